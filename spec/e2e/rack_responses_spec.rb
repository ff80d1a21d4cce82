# frozen_string_literal: true

require 'spec_helper'
require 'tmpdir'

# The usual response, an Integer status, a Hash and an Array of Strings, is checked and sent in
# one native call. These are the responses of that shape that need more, each of which must
# still get it.
RSpec.describe 'Responses with an Array body' do
  before(:all) do
    @tmp = Dir.mktmpdir('hyperion-tmp')
    @server = start_shared_server(fixture('responses.ru'), '-e', 'production', '-t', '2',
                                  env: { 'TMPDIR' => @tmp })
  end

  after(:all) do
    stop_quickly(@server)
    FileUtils.rm_rf(@tmp)
  end

  let(:port) { @server.port }

  def log
    http_get(port, '/log').body
  end

  def raw(bytes)
    sock = TCPSocket.new('127.0.0.1', port)
    sock.write(bytes)
    sock
  end

  it 'sends a plain Array body with its headers, keeping the connection' do
    sock = raw("GET /plain HTTP/1.1\r\nHost: x\r\n\r\nGET /plain HTTP/1.1\r\nHost: x\r\n\r\n")
    2.times do
      status, headers, body = read_response(sock)
      expect([status, headers['x-kind'], headers['content-length'], body]).to eq([200, 'plain', '11', 'plain array'])
    end
  ensure
    sock&.close
  end

  it 'closes an Array body that has a close method' do
    response = http_get(port, '/closing')
    expect(response.body).to eq('closingbody')
    expect(log).to eq('closed closingbody')
  end

  it 'runs rack.response_finished callbacks registered on an Array response' do
    expect(http_get(port, '/finished').body).to eq('with a callback')
    expect(log).to eq('finished 200 nil')
  end

  it 'runs rack.response_finished callbacks of an Array the app stored after deleting the one given' do
    expect(http_get(port, '/finished_replaced').body).to eq('replaced')
    expect(log).to eq('replaced 200')
  end

  it 'hands the socket over for a rack.hijack response header, sending the head as given' do
    sock = raw("GET /upgrade HTTP/1.1\r\nHost: x\r\n\r\n")
    data, closed = read_to_eof(sock)
    expect(closed).to be(true)
    expect(data).to start_with("HTTP/1.1 101 ")
    expect(data).to include("upgrade: echo\r\n")
    expect(data).to end_with("\r\n\r\nupgraded 0")
  ensure
    sock&.close
  end

  it 'ignores what the app returns after a full hijack' do
    data, closed = read_to_eof(raw("GET /hijack HTTP/1.1\r\nHost: x\r\n\r\n"))
    expect(closed).to be(true)
    expect(data).to eq("HTTP/1.1 200 OK\r\ncontent-length: 8\r\nconnection: close\r\n\r\nhijacked")
  end

  it 'closes a request body spilled to a temp file once the Array response is sent' do
    big = 'b' * 300_000
    3.times do
      sock = raw("POST /upload HTTP/1.1\r\nHost: x\r\ncontent-length: #{big.bytesize}\r\n\r\n#{big}")
      expect(read_response(sock)[2]).to eq('read 300000')
      sock.close
    end
    expect(http_get(port, '/deleted_fds').body).to eq('0')
  end

  it 'answers 500 for a status that is not an Integer, or a body part that is not a String' do
    expect(http_get(port, '/string_status').code).to eq('500')
    expect(http_get(port, '/symbol_part').code).to eq('500')
    expect(http_get(port, '/plain').body).to eq('plain array')
  end

  it 'gives each request rack.early_hints and, on plain TCP, rack.hijack' do
    expect(http_get(port, '/callables').body).to eq('true true')
  end
end
