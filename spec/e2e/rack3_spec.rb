# frozen_string_literal: true

require 'spec_helper'
require 'digest'
require 'tmpdir'

# The parts of the Rack 3 SPEC the server owns, through the real server in development (so
# Rack::Lint wraps every app: a SPEC violation on either side would be a 500).
RSpec.describe 'Rack 3 server duties' do
  before(:all) do
    @files = Dir.mktmpdir('hyperion-files')
    @tmp = Dir.mktmpdir('hyperion-tmp')
    @big = Random.new(7).bytes(300_000)
    File.binwrite(File.join(@files, 'big.bin'), @big)
    File.write(File.join(@files, 'small.txt'), "small file\n" * 10)
    @server = start_shared_server(fixture('rack3.ru'), '-t', '4',
                                  env: { 'FILES_DIR' => @files, 'TMPDIR' => @tmp })
  end

  after(:all) do
    stop_quickly(@server)
    FileUtils.rm_rf([@files, @tmp])
  end

  let(:port) { @server.port }

  def request(bytes)
    sock = TCPSocket.new('127.0.0.1', port)
    sock.write(bytes)
    sock
  end

  def get(path, extra = '')
    "GET #{path} HTTP/1.1\r\nHost: x\r\n#{extra}\r\n"
  end

  it 'runs the app inside Rack::Lint in development' do
    expect(@server.log).to include('in development')
    sock = request(get('/error'))
    status, = read_response(sock)
    expect(status).to eq(500)
    eventually { @server.log.include?('boom from the app') }
    expect(@server.log).to include('rack/lint.rb')
  ensure
    sock&.close
  end

  describe 'streaming bodies' do
    it 'gives a callable body a stream that reads the request body and writes chunks' do
      sock = request("POST /stream HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello")
      status, headers, body = read_response(sock)
      expect([status, headers['transfer-encoding'], body]).to eq([200, 'chunked', 'got 5:HELLO'])
      # Still keep-alive afterwards.
      sock.write(get('/early_hints'))
      statuses = [read_response(sock).first, read_response(sock).first]
      expect(statuses).to eq([103, 200])
    ensure
      sock&.close
    end
  end

  describe 'full hijack' do
    it 'hands over the socket and the bytes already read past the request' do
      sock = request("#{get('/hijack')}PIPELINED")
      data, closed = read_to_eof(sock)
      expect(closed).to be(true)
      expect(data).to end_with('hijacked ahead="PIPELINED"')
      # Nothing else was written by the server: exactly one response.
      expect(data.scan('HTTP/1.1').size).to eq(1)
    ensure
      sock&.close
    end

    it 'keeps serving other connections afterwards' do
      expect(http_get(port, '/nothing').code).to eq('404')
    end
  end

  describe 'partial hijack' do
    it 'writes the 101 head as given, then the app owns the socket' do
      sock = request(get('/upgrade', "Connection: Upgrade\r\nUpgrade: echo\r\n"))
      head = read_until(sock, /\r\n\r\n/)
      expect(head).to start_with("HTTP/1.1 101 Switching Protocols\r\n")
      expect(head).to include("upgrade: echo\r\n", "connection: Upgrade\r\n")
      expect(head).not_to match(/content-length|transfer-encoding/i)
      sock.write("ping\n")
      data, = read_to_eof(sock)
      expect(data).to eq("echo: ping\n")
    ensure
      sock&.close
    end
  end

  describe 'to_path bodies' do
    it 'serves a small file in one response with its length' do
      status, headers, body = read_response(request(get('/files/small.txt')))
      expect([status, headers['content-length'], body]).to eq([200, '110', "small file\n" * 10])
    end

    it 'serves a large file with the right bytes, and keeps the connection' do
      sock = request(get('/files/big.bin') + get('/files/big.bin'))
      2.times do
        status, headers, body = read_response(sock)
        expect([status, headers['content-length']]).to eq([200, '300000'])
        expect(Digest::SHA256.hexdigest(body)).to eq(Digest::SHA256.hexdigest(@big))
      end
    ensure
      sock&.close
    end

    it 'leaves Range handling to the app (Rack::Files answers 206 with the slice)' do
      status, headers, body = read_response(request(get('/files/big.bin', "Range: bytes=100-199\r\n")))
      expect([status, headers['content-length'], headers['content-range']]).to eq([206, '100', 'bytes 100-199/300000'])
      expect(body).to eq(@big.byteslice(100, 100))
    end

    it 'answers HEAD with the length and no body' do
      sock = request("HEAD /files/big.bin HTTP/1.1\r\nHost: x\r\n\r\n#{get('/files/small.txt')}")
      status, headers, = read_response(sock, head: true)
      expect([status, headers['content-length']]).to eq([200, '300000'])
      expect(read_response(sock)[2]).to eq("small file\n" * 10)
    ensure
      sock&.close
    end

    it 'sends a to_path body without a declared length' do
      status, headers, body = read_response(request(get('/path_body')))
      expect([status, headers['content-length']]).to eq([200, '300000'])
      expect(body).to eq(@big)
    end
  end

  describe 'rack.early_hints' do
    it 'sends 103 with the hinted headers before the response' do
      sock = request(get('/early_hints'))
      hints = read_response(sock)
      final = read_response(sock)
      expect(hints[0]).to eq(103)
      expect(hints[1]['link']).to eq('</style.css>; rel=preload; as=style')
      expect(final[0..2]).to eq([200, final[1], 'after hints'])
    ensure
      sock&.close
    end

    it 'sends nothing extra to an HTTP/1.0 client' do
      sock = request("GET /early_hints HTTP/1.0\r\n\r\n")
      data, = read_to_eof(sock)
      expect(data).to start_with('HTTP/1.1 200 OK')
      expect(data).not_to include('103')
    ensure
      sock&.close
    end
  end

  describe 'rack.response_finished' do
    it 'runs callbacks only after the response reached the client' do
      sock = request(get('/finished'))
      # The callback blocks its thread until /release: this response can only arrive if the
      # callback has not run yet.
      status, _, body = read_response(sock)
      expect([status, body]).to eq([200, 'finished body'])
      expect(http_get(port, '/release').code).to eq('200')
      expect(http_get(port, '/finished_log').body).to eq('200 NilClass')
    ensure
      sock&.close
    end

    it 'passes an error when the client went away before the response was written' do
      sock = request(get('/finished_big'))
      sock.close
      expect(http_get(port, '/finished_log').body).to eq('200 IOError')
    end
  end

  describe 'request bodies' do
    it 'keeps a small body in memory' do
      sock = request("POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc")
      expect(read_response(sock)[2]).to eq("memory 3 #{Digest::SHA256.hexdigest('abc')}")
    ensure
      sock&.close
    end

    it 'spills a large body to an unlinked temp file and leaves nothing behind' do
      payload = Random.new(3).bytes(1_000_000)
      sock = request("POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: #{payload.bytesize}\r\n\r\n")
      sock.write(payload)
      expect(read_response(sock)[2]).to eq("file 1000000 #{Digest::SHA256.hexdigest(payload)}")
      expect(Dir.children(@tmp)).to eq([])
    ensure
      sock&.close
    end

    it 'spills a large chunked body too' do
      payload = Random.new(4).bytes(400_000)
      chunks = payload.bytes.each_slice(50_000).map { |slice| "#{slice.size.to_s(16)}\r\n#{slice.pack('C*')}\r\n" }.join
      sock = request("POST /upload HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n#{chunks}0\r\n\r\n")
      expect(read_response(sock)[2]).to eq("file 400000 #{Digest::SHA256.hexdigest(payload)}")
    ensure
      sock&.close
    end
  end
end
