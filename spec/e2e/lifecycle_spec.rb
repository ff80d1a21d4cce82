# frozen_string_literal: true

require 'spec_helper'
require 'tmpdir'

RSpec.describe 'Server lifecycle (signals and graceful stop)' do
  around do |example|
    Dir.mktmpdir('hyperion-e2e-lifecycle') do |dir|
      @tmp = dir
      example.run
    end
  end

  # Whatever an example did, do not leave a process behind nor wait the harness's 10 s on it.
  after { stop_started_servers_quickly }

  def app_server(*args)
    start_server(*args, fixture('e2e_app.ru'))
  end

  def refused?(port)
    TCPSocket.new('127.0.0.1', port).close
    false
  rescue Errno::ECONNREFUSED
    true
  end

  # Starts GET /slow in a thread (raw socket, Connection: close) and waits until the app has
  # received it. The thread's value is [data, closed?].
  def start_slow_request(server, secs:)
    marker = File.join(@tmp, "slow-#{rand(1 << 32)}")
    thread = Thread.new do
      sock = TCPSocket.new('127.0.0.1', server.port)
      sock.write("GET /slow?secs=#{secs}&marker=#{marker} HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
      read_to_eof(sock, timeout: 60)
    ensure
      sock&.close
    end
    eventually(timeout: 15) { File.exist?(marker) }
    thread
  end

  def expect_clean_exit(server, within: 15)
    status = server.wait_exit(within)
    expect(status).not_to be_nil, "server did not exit within #{within}s; log:\n#{server.log}"
    expect(status.exitstatus).to eq(0), "exit status #{status.inspect}; log:\n#{server.log}"
  end

  %w[TERM INT].each do |signal|
    it "on SIG#{signal} finishes the in-flight request, refuses new connections and exits 0" do
      server = app_server
      slow = start_slow_request(server, secs: 2)

      server.signal(signal)
      eventually(timeout: 10) { refused?(server.port) }

      data, closed = slow.value
      status, _headers, body = parse_responses(data).first
      expect(status).to eq(200), data
      expect(body).to eq('slow request done')
      expect(closed).to be(true)

      expect_clean_exit(server)
      expect(server.log).to include("#{signal} received")
      expect(server.log).to include('stopped')
    end
  end

  it 'on SIGTERM with only idle keep-alive connections exits 0 promptly and closes them' do
    server = app_server # default graceful timeout: 30 s, far above the ceiling below
    sockets = Array.new(2) do
      TCPSocket.new('127.0.0.1', server.port).tap do |sock|
        sock.write("GET /hello HTTP/1.1\r\nHost: a\r\n\r\n")
        expect(read_response(sock)[2]).to eq('hello world')
      end
    end

    server.signal('TERM')
    expect_clean_exit(server, within: 10)
    sockets.each do |sock|
      data, closed = read_to_eof(sock, timeout: 5)
      expect(closed).to be(true)
      expect(data).to eq('')
    end
  ensure
    sockets&.each(&:close)
  end

  it 'on SIGINT with no connection at all exits 0' do
    server = app_server
    server.signal('INT')
    expect_clean_exit(server, within: 10)
    expect(server.log).to include('INT received')
  end

  it 'with --graceful-timeout 1 exits 0 although a request is still running, closing it unanswered' do
    server = app_server('--graceful-timeout', '1')
    slow = start_slow_request(server, secs: 30)

    server.signal('TERM')
    expect_clean_exit(server, within: 15)

    data, closed = slow.value
    expect(closed).to be(true)
    expect(data).to eq('')
  end

  it 'in inline mode (-t 0) serves requests and stops on SIGTERM' do
    server = app_server('-t', '0')
    sock = TCPSocket.new('127.0.0.1', server.port)
    2.times do |i|
      sock.write("GET /path/inline#{i} HTTP/1.1\r\nHost: a\r\n\r\n")
      status, _headers, body = read_response(sock)
      expect([status, body]).to eq([200, "you asked for /path/inline#{i}"])
    end
    sock.close
    expect(http_get(server.port, '/hello').body).to eq('hello world')

    server.signal('TERM')
    expect_clean_exit(server, within: 10)
  end
end
