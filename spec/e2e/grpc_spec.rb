# frozen_string_literal: true

require 'spec_helper'
require 'fileutils'
require 'tmpdir'

# The echo service (spec/grpc) served by Hyperion as a plain Rack app, called with the grpc
# gem's own client over h2c and over TLS.
RSpec.describe 'gRPC over HTTP/2', :e2e do
  before(:all) do
    require 'grpc'
    require_relative '../grpc/echo_services_pb'
  end

  def echo_request(message, **fields)
    Echo::EchoRequest.new(message: message, **fields)
  end

  shared_examples 'the echo service' do
    it 'answers a unary call' do
      reply = stub.unary(echo_request('hello'))
      expect(reply.message).to eq('hello')
    end

    it 'carries binary-clean payloads of every byte value' do
      payload = (0..255).map(&:chr).join.b * 64
      reply = stub.unary(echo_request(payload.force_encoding('UTF-8').scrub))
      expect(reply.message).to eq(payload.force_encoding('UTF-8').scrub)
    end

    it 'streams replies from the server, one message per yielded chunk' do
      replies = stub.server_stream(echo_request('tick', count: 5)).to_a
      expect(replies.map(&:index)).to eq([0, 1, 2, 3, 4])
      expect(replies.map(&:message).uniq).to eq(['tick'])
    end

    it 'reads a client stream as it arrives' do
      reply = stub.client_stream(%w[a b c d].map { |m| echo_request(m) })
      expect(reply.message).to eq('a,b,c,d')
      expect(reply.index).to eq(4)
    end

    it 'answers each message of a bidirectional stream before the next is sent' do
      outbox = Queue.new
      requests = Enumerator.new do |y|
        while (message = outbox.pop) != :done
          y << echo_request(message)
        end
      end
      replies = stub.chat(requests)
      seen = []
      %w[ping pong pang].each do |word|
        outbox << word
        # The next request is only sent once this reply came back: a server that waited for
        # the whole request body would hang here (and the call deadline would fail the test).
        seen << replies.next.message
      end
      outbox << :done
      expect(seen).to eq(%w[ping pong pang])
    end

    it 'reports an error status from the trailers' do
      expect { stub.unary(echo_request('nope', fail_with: 3)) }
        .to raise_error(GRPC::InvalidArgument, /failed as asked: nope/)
    end

    it 'reports an unknown method as unimplemented' do
      unknown = GRPC::ClientStub.new(target, credentials, timeout: 10)
      expect do
        unknown.request_response('/echo.Echo/Missing', echo_request('x'),
                                 ->(m) { m.to_proto }, ->(b) { Echo::EchoReply.decode(b) })
      end.to raise_error(GRPC::Unimplemented, %r{unknown method /echo.Echo/Missing})
    end
  end

  context 'over h2c' do
    before(:all) do
      @server = start_shared_server(fixture('grpc.ru'), '-t', '4')
    end

    after(:all) { @server&.stop }

    let(:target) { "127.0.0.1:#{@server.port}" }
    let(:credentials) { :this_channel_is_insecure }
    let(:stub) { Echo::Echo::Stub.new(target, credentials, timeout: 10) }

    include_examples 'the echo service'
  end

  context 'over TLS' do
    before(:all) do
      @certs = Dir.mktmpdir('hyperion-grpc-tls')
      system('sh', File.join(ServerHelpers::ROOT, 'spec', 'support', 'make_test_certs.sh'), @certs, exception: true)
      @server = start_shared_server(fixture('grpc.ru'), '-t', '4',
                             '--tls-cert', File.join(@certs, 'rsa-chain.pem'),
                             '--tls-key', File.join(@certs, 'rsa.key'),
                             # TLS is served by the tokio loop only, also in the io_uring rerun.
                             env: { 'HYPERION_IO_URING' => nil })
    end

    after(:all) do
      @server&.stop
      FileUtils.rm_rf(@certs) if @certs
    end

    # The certificate names localhost; the client checks it against the test CA.
    let(:target) { "localhost:#{@server.port}" }
    let(:credentials) { GRPC::Core::ChannelCredentials.new(File.read(File.join(@certs, 'ca.pem'))) }
    let(:stub) { Echo::Echo::Stub.new(target, credentials, timeout: 10) }

    include_examples 'the echo service'
  end
end
