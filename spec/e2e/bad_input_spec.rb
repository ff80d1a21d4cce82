# frozen_string_literal: true

require 'spec_helper'
require 'tmpdir'

RSpec.describe 'Malformed and hostile requests' do
  def max_header_bytes = 1024
  def max_body_bytes = 1000

  before(:all) do
    @tmp = Dir.mktmpdir('hyperion-e2e-bad')
    @record_file = File.join(@tmp, 'served.log')
    File.write(@record_file, '')
    @server = start_shared_server('--max-header-bytes', max_header_bytes.to_s, '--max-body-bytes', max_body_bytes.to_s,
                                  fixture('record.ru'), env: { 'RECORD_FILE' => @record_file })
  end

  after(:all) do
    stop_quickly(@server)
    FileUtils.rm_rf(@tmp) if @tmp
  end

  let(:port) { @server.port }

  def served
    File.read(@record_file).lines.map(&:chomp)
  end

  # Sends `bytes`, reads until the server closes; returns [responses, closed?, raw].
  def exchange(bytes)
    sock = TCPSocket.new('127.0.0.1', port)
    begin
      sock.write(bytes)
    rescue Errno::EPIPE, Errno::ECONNRESET
      nil
    end
    data, closed = read_to_eof(sock)
    [parse_responses(data), closed, data]
  ensure
    sock&.close
  end

  # The server must answer `status` exactly once and close the connection.
  def expect_rejected(bytes, status)
    responses, closed, raw = exchange(bytes)
    expect(responses.map(&:first)).to eq([status]), "got: #{raw.inspect[0, 400]}"
    expect(closed).to be(true)
    responses.first
  end

  it 'sanity: a well-formed request is served and recorded' do
    responses, = exchange("GET /fine HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
    expect(responses.map { |s, _h, b| [s, b] }).to eq([[200, 'served GET /fine']])
    expect(served).to include('GET /fine')
  end

  it 'answers a malformed request line with 400 and closes' do
    expect_rejected("THIS IS NOT HTTP\r\n\r\n", 400)
  end

  it 'answers a request line with garbage in the version with 400 and closes' do
    expect_rejected("GET / HTTX/1.1\r\nHost: a\r\n\r\n", 400)
  end

  it 'answers Content-Length together with Transfer-Encoding with 400' do
    expect_rejected("POST /both HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n" \
                    "4\r\nabcd\r\n0\r\n\r\n", 400)
    expect(served).not_to include('POST /both')
  end

  it 'answers duplicate Content-Length headers with 400' do
    expect_rejected("POST /dup HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 5\r\n\r\nabcde", 400)
    expect(served).not_to include('POST /dup')
  end

  it 'answers an unsupported Transfer-Encoding with 501' do
    expect_rejected("POST /gzip HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\nxxxx", 501)
    expect(served).not_to include('POST /gzip')
  end

  it 'answers an HTTP/2.0 request line with 505' do
    expect_rejected("GET / HTTP/2.0\r\nHost: a\r\n\r\n", 505)
  end

  it 'answers a head larger than --max-header-bytes with 431' do
    big = "GET /big-head HTTP/1.1\r\nHost: a\r\nX-Filler: #{'a' * (max_header_bytes * 2)}\r\n\r\n"
    expect_rejected(big, 431)
    expect(served).not_to include('GET /big-head')
  end

  it 'answers a Content-Length over --max-body-bytes with 413 without waiting for the body' do
    sock = TCPSocket.new('127.0.0.1', port)
    sock.write("POST /too-big HTTP/1.1\r\nHost: a\r\nContent-Length: #{max_body_bytes + 1}\r\n\r\n")
    # No body is sent: the answer must come from the head alone.
    status, = read_response(sock)
    expect(status).to eq(413)
    expect(served).not_to include('POST /too-big')
  ensure
    sock&.close
  end

  it 'accepts a body of exactly --max-body-bytes' do
    responses, = exchange("POST /just-fits HTTP/1.1\r\nHost: a\r\nContent-Length: #{max_body_bytes}\r\n" \
                          "Connection: close\r\n\r\n#{'b' * max_body_bytes}")
    expect(responses.map(&:first)).to eq([200])
  end

  it 'answers a chunked body that grows over --max-body-bytes with 413' do
    chunk = 'c' * 600
    expect_rejected("POST /chunked-too-big HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n" \
                    "258\r\n#{chunk}\r\n258\r\n#{chunk}\r\n0\r\n\r\n", 413)
    expect(served).not_to include('POST /chunked-too-big')
  end

  it 'answers an HTTP/1.1 request without Host with 400' do
    expect_rejected("GET /no-host HTTP/1.1\r\nAccept: */*\r\n\r\n", 400)
    expect(served).not_to include('GET /no-host')
  end

  ['example.com:xyz', 'example.com:-1', 'example.com:80:90', '[::1', '[::1]x'].each do |host|
    it "answers 400 to an invalid Host header (#{host})" do
      path = "/bad-host-#{host.gsub(/\W/, '_')}"
      expect_rejected("GET #{path} HTTP/1.1\r\nHost: #{host}\r\nConnection: close\r\n\r\n", 400)
      expect(served).not_to include("GET #{path}")
    end
  end

  it 'never serves a request smuggled behind a CL+TE request' do
    responses, closed, = exchange("GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n" \
                                  "0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n")
    expect(responses.map(&:first)).to eq([400])
    expect(closed).to be(true)
    expect(served.grep(/smuggled/)).to be_empty
  end

  it 'never serves a request smuggled behind a duplicate Content-Length request' do
    responses, closed, = exchange("POST /a HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\nContent-Length: 44\r\n\r\n" \
                                  "GET /smuggled2 HTTP/1.1\r\nHost: a\r\n\r\n")
    expect(responses.map(&:first)).to eq([400])
    expect(closed).to be(true)
    expect(served.grep(/smuggled2/)).to be_empty
  end

  it 'does not serve the rest of a pipeline after a bad request' do
    responses, closed, = exchange("GET /ok-first HTTP/1.1\r\nHost: a\r\n\r\n" \
                                  "GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n" \
                                  "GET /after-bad HTTP/1.1\r\nHost: a\r\n\r\n")
    expect(responses.map(&:first)).to eq([200, 501])
    expect(closed).to be(true)
    expect(served).to include('GET /ok-first')
    expect(served).not_to include('GET /after-bad')
  end

  it 'keeps serving other connections after bad requests' do
    exchange("garbage\r\n\r\n")
    responses, = exchange("GET /still-alive HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
    expect(responses.map { |s, _h, b| [s, b] }).to eq([[200, 'served GET /still-alive']])
  end
end
