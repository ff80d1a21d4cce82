# frozen_string_literal: true

# The same echo service on the grpc gem's own server, the peer in bench/grpc.sh.
#
#   ruby bench/grpc_gem_server.rb PORT POOL_SIZE
require 'grpc'
require_relative '../spec/grpc/echo_services_pb'

class EchoService < Echo::Echo::Service
  def unary(request, _call)
    Echo::EchoReply.new(message: request.message)
  end
end

port, pool = ARGV
server = GRPC::RpcServer.new(pool_size: Integer(pool), max_waiting_requests: 10_000)
server.add_http2_port("127.0.0.1:#{port}", :this_port_is_insecure)
server.handle(EchoService)
%w[TERM INT].each { |sig| trap(sig) { Thread.new { server.stop } } }
server.run_till_terminated
