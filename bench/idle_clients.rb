# frozen_string_literal: true

# Opens N keep-alive connections to a server, sends one GET on each and reads the full
# response, then leaves them idle and samples the server's memory while they are held.
# Used by bench/idle_rss.sh; prints `key=value` lines on stdout, progress on stderr.
#
#   ruby bench/idle_clients.rb --pid PID --port PORT [--count 10000] [--hold 10]
#
# Connections are opened in batches (connect all, send all, then read all) so the server
# sees real concurrency while the client stays simple and every wait has a deadline: a
# server that stops answering makes the run end with a count, never hang.

require 'optparse'
require 'socket'

options = { host: '127.0.0.1', count: 10_000, hold: 10.0, batch: 250, batch_timeout: 10.0, open_timeout: 120.0 }
OptionParser.new do |opts|
  opts.on('--pid PID', Integer, 'server pid (memory is read from /proc/PID/status)') { |v| options[:pid] = v }
  opts.on('--host HOST') { |v| options[:host] = v }
  opts.on('--port PORT', Integer) { |v| options[:port] = v }
  opts.on('--count N', Integer, 'connections to open (default 10000)') { |v| options[:count] = v }
  opts.on('--hold SECONDS', Float, 'how long to hold them idle (default 10)') { |v| options[:hold] = v }
  opts.on('--batch N', Integer, 'connections opened per batch (default 250)') { |v| options[:batch] = v }
  opts.on('--batch-timeout SECONDS', Float, 'deadline for one batch (default 10)') { |v| options[:batch_timeout] = v }
  opts.on('--open-timeout SECONDS', Float, 'deadline for opening all (default 120)') { |v| options[:open_timeout] = v }
end.parse!
abort 'usage: idle_clients.rb --pid PID --port PORT [options]' unless options[:pid] && options[:port]

REQUEST = "GET / HTTP/1.1\r\nHost: #{options[:host]}:#{options[:port]}\r\n\r\n".b.freeze

def now = Process.clock_gettime(Process::CLOCK_MONOTONIC)

def emit(key, value)
  $stdout.puts("#{key}=#{value}")
  $stdout.flush
end

def progress(message) = warn("[idle_clients] #{message}")

# kB values from /proc/PID/status (VmRSS, VmHWM), plus thread count; nil once the process
# is gone, which the caller reports.
def proc_status(pid)
  fields = File.read("/proc/#{pid}/status").lines.to_h { |line| line.split(':', 2).map(&:strip) }
  { rss_kib: fields['VmRSS'].to_i, hwm_kib: fields['VmHWM'].to_i, threads: fields['Threads'].to_i,
    fds: Dir.children("/proc/#{pid}/fd").size }
rescue Errno::ENOENT, Errno::ESRCH
  nil
end

# Reads one HTTP/1.1 response (Content-Length or chunked) before the deadline.
# Returns [:ok, status, keep_alive] or [:error, reason].
def read_response(sock, deadline)
  buffer = +''.b
  head_end = nil
  loop do
    head_end ||= buffer.index("\r\n\r\n")
    if head_end
      head = buffer[0, head_end]
      status = head[/\AHTTP\/1\.[01] (\d{3})/, 1]
      return [:error, 'malformed status line'] unless status

      body = buffer[(head_end + 4)..]
      length = head[/^content-length:\s*(\d+)/i, 1]
      complete = if length then body.bytesize >= length.to_i
                 elsif head =~ /^transfer-encoding:\s*chunked/i then body.include?("0\r\n\r\n")
                 else
                   return [:error, 'response without Content-Length or chunked body']
                 end
      return [:ok, status.to_i, head !~ /^connection:\s*close/i] if complete
    end

    remaining = deadline - now
    return [:error, 'timeout'] if remaining <= 0

    case (chunk = sock.read_nonblock(16_384, exception: false))
    when :wait_readable then sock.wait_readable(remaining)
    when nil then return [:error, 'closed by server before full response']
    else buffer << chunk
    end
  end
rescue SystemCallError, IOError => e
  [:error, e.class.name.split('::').last]
end

pid = options[:pid]
boot = proc_status(pid) or abort "server pid #{pid} not running"
emit('boot_rss_kib', boot[:rss_kib])
emit('boot_threads', boot[:threads])
emit('boot_fds', boot[:fds])

held = []
errors = Hash.new(0)
statuses = Hash.new(0)
closing_responses = 0
open_deadline = now + options[:open_timeout]
started = now

options[:count].times.each_slice(options[:batch]) do |slice|
  if now > open_deadline
    errors["not attempted (#{options[:open_timeout].to_i}s open deadline passed)"] += options[:count] - held.size - errors.values.sum
    break
  end
  batch_deadline = now + options[:batch_timeout]
  batch = slice.filter_map do
    Socket.tcp(options[:host], options[:port], connect_timeout: [batch_deadline - now, 0.1].max)
  rescue SystemCallError, IOError => e
    errors["connect: #{e.class.name.split('::').last}"] += 1
    nil
  end
  batch.select! do |sock|
    sock.write(REQUEST)
    true
  rescue SystemCallError, IOError => e
    errors["write: #{e.class.name.split('::').last}"] += 1
    sock.close
    false
  end
  batch.each do |sock|
    result, status, keep_alive = read_response(sock, batch_deadline)
    if result == :ok
      statuses[status] += 1
      closing_responses += 1 unless keep_alive
      held << sock
    else
      errors["read: #{status}"] += 1
      sock.close
    end
  end
  progress("#{held.size} responses, #{errors.values.sum} failures after #{(now - started).round(1)}s") if (held.size % 2000).zero? || errors.any?
end

emit('attempted', options[:count])
emit('responses', held.size)
emit('responses_2xx', statuses.select { |code, _| (200..299).cover?(code) }.values.sum)
emit('responses_connection_close', closing_responses)
emit('open_seconds', (now - started).round(2))
errors.each { |reason, n| emit('error', "#{n} x #{reason}") }

# Hold the connections idle; sample every second and report the last sample (steady state)
# and the largest.
samples = []
hold_end = now + options[:hold]
while now < hold_end
  sleep([1.0, hold_end - now].min)
  sample = proc_status(pid)
  break unless sample

  samples << sample
end
if samples.empty?
  emit('server_alive_during_hold', 'no')
else
  emit('server_alive_during_hold', 'yes')
  emit('held_rss_kib', samples.last[:rss_kib])
  emit('held_rss_max_kib', samples.map { |s| s[:rss_kib] }.max)
  emit('held_hwm_kib', samples.last[:hwm_kib])
  emit('held_threads', samples.last[:threads])
  emit('held_fds', samples.last[:fds])
end

# A connection the server already closed reads EOF; an idle one has nothing to read.
still_open = held.count { |sock| sock.read_nonblock(1, exception: false) == :wait_readable rescue false }
emit('still_open_after_hold', still_open)

held.each(&:close)
sleep 1
after = proc_status(pid)
emit('after_close_rss_kib', after ? after[:rss_kib] : 'server gone')

# The server must still serve new connections after the crowd has left.
begin
  sock = Socket.tcp(options[:host], options[:port], connect_timeout: 5)
  sock.write(REQUEST)
  result, status, = read_response(sock, now + 5)
  emit('after_close_request', result == :ok ? "HTTP #{status}" : "failed: #{status}")
  sock.close
rescue SystemCallError, IOError => e
  emit('after_close_request', "failed: #{e.class}")
end
