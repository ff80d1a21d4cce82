# frozen_string_literal: true

# Load generator for bench/grpc.sh: THREADS client threads, each with its own channel, make
# unary echo calls for SECONDS; prints one line of key=value results. Any failed call is
# counted, and bench/grpc.sh treats a run with failures as invalid.
#
#   ruby bench/grpc_client.rb TARGET THREADS SECONDS
require 'grpc'
require_relative '../spec/grpc/echo_services_pb'

target, threads, seconds = ARGV
threads = Integer(threads)
seconds = Float(seconds)
request = Echo::EchoRequest.new(message: 'hello from the grpc bench')

clock = -> { Process.clock_gettime(Process::CLOCK_MONOTONIC) }
started_all = clock.call
deadline = started_all + seconds
results = Array.new(threads) do
  Thread.new do
    stub = Echo::Echo::Stub.new(target, :this_channel_is_insecure, timeout: 10)
    latencies = []
    failures = 0
    errors = Hash.new(0)
    while clock.call < deadline
      started = clock.call
      begin
        stub.unary(request)
        latencies << (clock.call - started)
      rescue GRPC::BadStatus => e
        failures += 1
        errors[e.class.name.split('::').last] += 1
      end
    end
    [latencies, failures, errors]
  end
end.map(&:value)
# Calls in flight at the deadline finish after it: divide by the time actually taken.
elapsed = clock.call - started_all

latencies = results.flat_map(&:first).sort
failures = results.sum { |r| r[1] }
errors = results.map(&:last).inject(Hash.new(0)) { |all, e| all.merge(e) { |_, a, b| a + b } }
percentile = ->(p) { latencies.empty? ? 0 : latencies[[(latencies.size * p).ceil - 1, 0].max] * 1000 }
printf("calls=%d failures=%d calls_per_s=%.1f p50_ms=%.3f p99_ms=%.3f\n",
       latencies.size, failures, latencies.size / elapsed, percentile.call(0.50), percentile.call(0.99))
puts "errors=#{errors.map { |name, n| "#{name}:#{n}" }.join(',')}" unless errors.empty?
