# frozen_string_literal: true

require 'spec_helper'
require 'json'
require 'tmpdir'

# Every rejection the request parser documents (crates/hyperion-http/src/lib.rs), sent as raw
# bytes over a real socket. Each rejected request is followed by a second, well-formed request
# on the same connection: the server must answer the first with exactly one error response,
# close the connection, and never hand either request to the application.
RSpec.describe 'Malformed and hostile requests' do
  max_header_bytes = 16_384
  max_body_bytes = 1000
  chunked_head = "POST /chunked HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"

  before(:all) do
    @tmp = Dir.mktmpdir('hyperion-e2e-bad')
    @record_file = File.join(@tmp, 'served.log')
    File.write(@record_file, '')
    @server = start_shared_server('--max-header-bytes', max_header_bytes.to_s, '--max-body-bytes', max_body_bytes.to_s,
                                  '--max-request-read-seconds', '1',
                                  fixture('record.ru'), env: { 'RECORD_FILE' => @record_file })
  end

  after(:all) do
    stop_quickly(@server)
    FileUtils.rm_rf(@tmp) if @tmp
  end

  let(:port) { @server.port }

  # "METHOD PATH" of every request the application has served so far.
  def served
    File.read(@record_file).lines.map(&:chomp)
  end

  def send_bytes(sock, bytes)
    sock.write(bytes)
  rescue Errno::EPIPE, Errno::ECONNRESET
    nil
  end

  # Sends `bytes`, reads until the server closes; returns [responses, closed?, raw].
  def exchange(bytes)
    sock = TCPSocket.new('127.0.0.1', port)
    send_bytes(sock, bytes)
    data, closed = read_to_eof(sock)
    [parse_responses(data), closed, data]
  ensure
    sock&.close
  end

  # Sends `bytes` and then a well-formed request on the same connection; the server must answer
  # `status` exactly once, close, and serve neither request (nor any path in `never_served`).
  #
  # stall: true sends only `bytes` and waits for the answer before sending the second request,
  # for the cases where the server must decide without the rest of the request (a body it
  # refuses, a line that never ends, a client that stops sending).
  def expect_rejected(bytes, status, stall: false, never_served: [])
    smuggled = "GET /smuggled-#{Process.clock_gettime(Process::CLOCK_MONOTONIC, :nanosecond)}"
    follow_up = "#{smuggled} HTTP/1.1\r\nHost: a\r\n\r\n"
    before = served.size
    sock = TCPSocket.new('127.0.0.1', port)
    if stall
      send_bytes(sock, bytes)
      data, closed = read_to_eof(sock)
      send_bytes(sock, follow_up)
    else
      send_bytes(sock, bytes + follow_up)
      data, closed = read_to_eof(sock)
    end
    expect(parse_responses(data).map(&:first)).to eq([status]), "got: #{data.inspect[0, 400]}"
    expect(closed).to be(true)
    expect(served.drop(before)).to eq([])
    expect(served).not_to include(smuggled, *never_served)
  ensure
    sock&.close
  end

  # One example per row: `rejects 'what is wrong', bytes, status`.
  def self.rejects(description, bytes, status, **options)
    it "answers #{status} to #{description}" do
      expect_rejected(bytes, status, **options)
    end
  end

  # The env keys the application saw for a request answered 200 (the fixture answers JSON to
  # `Accept: application/json`).
  def env_for(request)
    responses, closed, raw = exchange(request)
    expect(responses.map(&:first)).to eq([200]), "got: #{raw.inspect[0, 400]}"
    expect(closed).to be(true)
    JSON.parse(responses.first[2])
  end

  it 'sanity: a well-formed request is served and recorded' do
    responses, = exchange("GET /fine HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
    expect(responses.map { |s, _h, b| [s, b] }).to eq([[200, 'served GET /fine']])
    expect(served).to include('GET /fine')
  end

  describe 'request line' do
    rejects 'a line that is not HTTP', "THIS IS NOT HTTP\r\n\r\n", 400
    rejects 'an empty method (line starting with a space)', " / HTTP/1.1\r\nHost: a\r\n\r\n", 400
    rejects 'two spaces between method and target', "GET  /x HTTP/1.1\r\nHost: a\r\n\r\n", 400
    rejects 'words after the version', "GET /x HTTP/1.1 extra\r\nHost: a\r\n\r\n", 400
    rejects 'a method with a separator (G(T)', "G(T /x HTTP/1.1\r\nHost: a\r\n\r\n", 400
    rejects 'a method with a NUL byte', "GE\0T /x HTTP/1.1\r\nHost: a\r\n\r\n", 400
    rejects 'a tab between method and target', "GET\t/x HTTP/1.1\r\nHost: a\r\n\r\n", 400
    rejects 'a target with a control character', "GET /x\x01y HTTP/1.1\r\nHost: a\r\n\r\n", 400
    rejects 'an empty version', "GET /x \r\nHost: a\r\n\r\n", 400
    rejects 'HTTP/0.9 (no version at all)', "GET /\r\n", 400
    rejects 'a version that is not HTTP (HTTX/1.1)', "GET /x HTTX/1.1\r\nHost: a\r\n\r\n", 400
    rejects 'a lowercase version (http/1.1)', "GET /x http/1.1\r\nHost: a\r\n\r\n", 400
    rejects 'a version with a two-digit minor (HTTP/1.10)', "GET /x HTTP/1.10\r\nHost: a\r\n\r\n", 400
    rejects 'HTTP/2.0 on an HTTP/1 request line', "GET /x HTTP/2.0\r\nHost: a\r\n\r\n", 505
    rejects 'HTTP/3 on an HTTP/1 request line', "GET /x HTTP/3\r\nHost: a\r\n\r\n", 505
    rejects 'HTTP/1.2', "GET /x HTTP/1.2\r\nHost: a\r\n\r\n", 505
  end

  describe 'header syntax' do
    rejects 'bare LF line endings throughout', "GET /x HTTP/1.1\nHost: a\n\n", 400
    rejects 'a bare LF after the request line', "GET /x HTTP/1.1\nHost: a\r\n\r\n", 400
    rejects 'a bare LF ending one header line', "GET /x HTTP/1.1\r\nHost: a\nX-A: b\r\n\r\n", 400
    rejects 'a bare LF ending the head', "GET /x HTTP/1.1\r\nHost: a\r\n\n", 400
    rejects 'a bare CR inside a header line', "GET /x HTTP/1.1\r\nHost: a\rX-A: b\r\n\r\n", 400
    rejects 'a bare CR in the request line', "GET /x\ry HTTP/1.1\r\nHost: a\r\n\r\n", 400
    rejects 'obs-fold (continuation line starting with a space)', "GET /x HTTP/1.1\r\nHost: a\r\nX-A: one\r\n two\r\n\r\n", 400
    rejects 'obs-fold (continuation line starting with a tab)', "GET /x HTTP/1.1\r\nHost: a\r\nX-A: one\r\n\ttwo\r\n\r\n", 400
    rejects 'whitespace before the first header line', "GET /x HTTP/1.1\r\n Host: a\r\n\r\n", 400
    rejects 'a space between header name and colon', "GET /x HTTP/1.1\r\nHost : a\r\n\r\n", 400
    rejects 'a tab between header name and colon', "GET /x HTTP/1.1\r\nHost: a\r\nX-A\t: b\r\n\r\n", 400
    rejects 'a control character in a header name', "GET /x HTTP/1.1\r\nHost: a\r\nX-\x01A: b\r\n\r\n", 400
    rejects 'a NUL byte in a header name', "GET /x HTTP/1.1\r\nHost: a\r\nX-\0A: b\r\n\r\n", 400
    rejects 'a control character in a header value', "GET /x HTTP/1.1\r\nHost: a\r\nX-A: b\x01c\r\n\r\n", 400
    rejects 'a NUL byte in a header value', "GET /x HTTP/1.1\r\nHost: a\r\nX-A: b\0c\r\n\r\n", 400
    rejects 'DEL in a header value', "GET /x HTTP/1.1\r\nHost: a\r\nX-A: b\x7Fc\r\n\r\n", 400
    rejects 'an empty header name', "GET /x HTTP/1.1\r\nHost: a\r\n: value\r\n\r\n", 400
    rejects 'a header line without a colon', "GET /x HTTP/1.1\r\nHost: a\r\nNoColonHere\r\n\r\n", 400
  end

  describe 'Content-Length' do
    def self.post_with(*headers, body: 'hello')
      "POST /cl HTTP/1.1\r\nHost: a\r\n#{headers.map { |h| "#{h}\r\n" }.join}\r\n#{body}"
    end

    rejects 'two equal Content-Length headers', post_with('Content-Length: 5', 'Content-Length: 5'), 400
    rejects 'two different Content-Length headers', post_with('Content-Length: 3', 'Content-Length: 5'), 400
    rejects 'a Content-Length list (5, 5)', post_with('Content-Length: 5, 5'), 400
    rejects 'an empty Content-Length', post_with('Content-Length: '), 400
    rejects 'a signed Content-Length (+5)', post_with('Content-Length: +5'), 400
    rejects 'a negative Content-Length (-5)', post_with('Content-Length: -5'), 400
    rejects 'a decimal-fraction Content-Length (5.0)', post_with('Content-Length: 5.0'), 400
    rejects 'a hexadecimal Content-Length (0x5)', post_with('Content-Length: 0x5'), 400
    rejects 'an overflowing Content-Length', post_with('Content-Length: 99999999999999999999999'), 400
    rejects 'Content-Length followed by Transfer-Encoding',
            post_with('Content-Length: 5', 'Transfer-Encoding: chunked', body: "5\r\nhello\r\n0\r\n\r\n"), 400
    rejects 'Transfer-Encoding followed by Content-Length',
            post_with('Transfer-Encoding: chunked', 'Content-Length: 5', body: "5\r\nhello\r\n0\r\n\r\n"), 400
    rejects 'Content-Length with Transfer-Encoding hiding a request in the body',
            post_with('Content-Length: 5', 'Transfer-Encoding: chunked',
                      body: "0\r\n\r\nGET /smuggled-in-body HTTP/1.1\r\nHost: a\r\n\r\n"),
            400, never_served: ['GET /smuggled-in-body']
    rejects 'duplicate Content-Length hiding a request in the body',
            post_with('Content-Length: 0', 'Content-Length: 44', body: "GET /smuggled-in-body HTTP/1.1\r\nHost: a\r\n\r\n"),
            400, never_served: ['GET /smuggled-in-body']
  end

  describe 'Transfer-Encoding' do
    def self.post_with_te(value, version: '1.1', host: true)
      "POST /te HTTP/#{version}\r\n#{host ? "Host: a\r\n" : ''}Transfer-Encoding: #{value}\r\n\r\n5\r\nhello\r\n0\r\n\r\n"
    end

    rejects 'chunked that is not the final coding (chunked, gzip)', post_with_te('chunked, gzip'), 400
    rejects 'chunked repeated in one list (chunked, chunked)', post_with_te('chunked, chunked'), 400
    rejects 'chunked repeated on two lines',
            "POST /te HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n" \
            "5\r\nhello\r\n0\r\n\r\n", 400
    rejects 'chunked with a parameter', post_with_te('chunked;q=1'), 400
    rejects 'an empty coding in the list (gzip, , chunked)', post_with_te('gzip, , chunked'), 400
    rejects 'an unknown coding (gzip)', post_with_te('gzip'), 501
    rejects 'an unknown coding (foo)', post_with_te('foo'), 501
    rejects 'identity', post_with_te('identity'), 501
    rejects 'an unsupported coding before chunked (gzip, chunked)', post_with_te('gzip, chunked'), 501
    rejects 'Transfer-Encoding: chunked on HTTP/1.0', post_with_te('chunked', version: '1.0', host: false), 400
    rejects 'Transfer-Encoding: gzip on HTTP/1.0', post_with_te('gzip', version: '1.0', host: false), 400

    it 'does not serve the rest of a pipeline after a bad request' do
      responses, closed, = exchange("GET /ok-first HTTP/1.1\r\nHost: a\r\n\r\n" \
                                    "GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n" \
                                    "GET /after-bad HTTP/1.1\r\nHost: a\r\n\r\n")
      expect(responses.map(&:first)).to eq([200, 501])
      expect(closed).to be(true)
      expect(served).to include('GET /ok-first')
      expect(served).not_to include('GET /after-bad')
    end
  end

  describe 'chunked framing' do
    rejects 'a chunk size that is not hex', "#{chunked_head}g\r\nhello\r\n0\r\n\r\n", 400
    rejects 'a chunk size with a plus sign (+5)', "#{chunked_head}+5\r\nhello\r\n0\r\n\r\n", 400
    rejects 'a chunk size with a minus sign (-5)', "#{chunked_head}-5\r\nhello\r\n0\r\n\r\n", 400
    rejects 'a chunk size with a 0x prefix', "#{chunked_head}0x5\r\nhello\r\n0\r\n\r\n", 400
    rejects 'a chunk size with a leading space', "#{chunked_head} 5\r\nhello\r\n0\r\n\r\n", 400
    rejects 'an empty chunk size', "#{chunked_head}\r\nhello\r\n0\r\n\r\n", 400
    rejects 'a chunk size overflowing 64 bits', "#{chunked_head}1#{'0' * 16}\r\nhello\r\n0\r\n\r\n", 400
    rejects 'more chunk data than the size says', "#{chunked_head}3\r\nhello\r\n0\r\n\r\n", 400
    rejects 'less chunk data than the size says', "#{chunked_head}5\r\nhel\r\n0\r\n\r\n", 400
    rejects 'chunk data not followed by CRLF', "#{chunked_head}5\r\nhello0\r\n\r\n", 400
    rejects 'chunk data followed by a bare LF', "#{chunked_head}5\r\nhello\n0\r\n\r\n", 400
    rejects 'a chunk size line ending in a bare LF', "#{chunked_head}5\nhello\r\n0\r\n\r\n", 400
    rejects 'a malformed chunk extension', "#{chunked_head}5;=x\r\nhello\r\n0\r\n\r\n", 400
    rejects 'a chunk extension over 1024 bytes',
            "#{chunked_head}5;name=#{'v' * 1100}\r\nhello\r\n0\r\n\r\n", 400
    rejects 'a chunk extension that never ends, before its line does',
            "#{chunked_head}5;#{'a' * 4096}", 400, stall: true
    rejects 'a trailer section over 16 KiB', "#{chunked_head}0\r\nX-Big: #{'a' * (17 * 1024)}\r\n\r\n", 400
    rejects 'more than 100 trailer fields', "#{chunked_head}0\r\n#{"X-T: 1\r\n" * 101}\r\n", 400
    rejects 'a trailer line ending in a bare LF', "#{chunked_head}0\r\nX-T: 1\n\r\n", 400
    rejects 'a request hidden in the trailer section',
            "#{chunked_head}0\r\nGET /smuggled-trailer HTTP/1.1\r\nHost: a\r\n\r\n", 400,
            never_served: ['GET /smuggled-trailer']
  end

  describe 'header names with an underscore' do
    it 'gives the app only the real X-Forwarded-For when X-Forwarded_For comes first' do
      env = env_for("GET /xff HTTP/1.1\r\nHost: a\r\nX-Forwarded_For: evil\r\nX-Forwarded-For: good\r\n" \
                    "Accept: application/json\r\nConnection: close\r\n\r\n")
      expect(env['HTTP_X_FORWARDED_FOR']).to eq('good')
      expect(env.values).not_to include(a_string_including('evil'))
    end

    it 'gives the app only the real X-Forwarded-For when X-Forwarded_For comes second' do
      env = env_for("GET /xff HTTP/1.1\r\nHost: a\r\nX-Forwarded-For: good\r\nX-Forwarded_For: evil\r\n" \
                    "Accept: application/json\r\nConnection: close\r\n\r\n")
      expect(env['HTTP_X_FORWARDED_FOR']).to eq('good')
      expect(env.values).not_to include(a_string_including('evil'))
    end

    it 'does not turn X_Forwarded_For alone into HTTP_X_FORWARDED_FOR' do
      env = env_for("GET /xff HTTP/1.1\r\nHost: a\r\nX_Forwarded_For: evil\r\n" \
                    "Accept: application/json\r\nConnection: close\r\n\r\n")
      expect(env).not_to have_key('HTTP_X_FORWARDED_FOR')
      expect(env.values).not_to include(a_string_including('evil'))
    end
  end

  describe 'Host' do
    rejects 'an HTTP/1.1 request without Host', "GET /no-host HTTP/1.1\r\nAccept: */*\r\n\r\n", 400
    rejects 'an absolute-form HTTP/1.1 request without Host', "GET http://example.com/abs HTTP/1.1\r\n\r\n", 400
    rejects 'two equal Host headers', "GET /x HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n", 400
    rejects 'two different Host headers', "GET /x HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400
    rejects 'an empty authority in an absolute-form target', "GET http:///x HTTP/1.1\r\nHost: a\r\n\r\n", 400
    rejects 'userinfo in an absolute-form target', "GET http://u@example.com/x HTTP/1.1\r\nHost: a\r\n\r\n", 400

    ['example.com:xyz', 'example.com:-1', 'example.com:80:90', '[::1', '[::1]x', 'a b'].each do |host|
      rejects "an invalid Host (#{host})", "GET /x HTTP/1.1\r\nHost: #{host}\r\n\r\n", 400
    end

    it 'accepts an absolute-form target: PATH_INFO and QUERY_STRING come from it' do
      env = env_for("GET http://example.com/abs?q=1 HTTP/1.1\r\nHost: example.com\r\n" \
                    "Accept: application/json\r\nConnection: close\r\n\r\n")
      expect(env).to include('PATH_INFO' => '/abs', 'QUERY_STRING' => 'q=1', 'SERVER_NAME' => 'example.com',
                             'SERVER_PORT' => '80')
      expect(served).to include('GET /abs')
    end

    it "takes SERVER_NAME, SERVER_PORT and HTTP_HOST from an absolute-form target's authority, not from Host" do
      env = env_for("GET http://target.example:8080/abs HTTP/1.1\r\nHost: other.example\r\n" \
                    "Accept: application/json\r\nConnection: close\r\n\r\n")
      expect(env).to include('PATH_INFO' => '/abs', 'SERVER_NAME' => 'target.example', 'SERVER_PORT' => '8080',
                             'HTTP_HOST' => 'target.example:8080')
      expect(env.values.grep(String).join).not_to include('other.example')
    end

    it 'gives an absolute-form target without a path the PATH_INFO /' do
      env = env_for("GET http://example.com?q=1 HTTP/1.1\r\nHost: example.com\r\n" \
                    "Accept: application/json\r\nConnection: close\r\n\r\n")
      expect(env).to include('PATH_INFO' => '/', 'QUERY_STRING' => 'q=1')
    end
  end

  describe 'limits' do
    rejects 'a head larger than --max-header-bytes (431)',
            "GET /big-head HTTP/1.1\r\nHost: a\r\nX-Filler: #{'a' * (max_header_bytes * 2)}\r\n\r\n", 431
    rejects 'more than 100 header fields (431)',
            "GET /many HTTP/1.1\r\nHost: a\r\n#{(1..100).map { |i| "X-H#{i}: v\r\n" }.join}\r\n", 431
    rejects 'a request target over 8 KiB (414)', "GET /#{'u' * (8 * 1024)} HTTP/1.1\r\nHost: a\r\n\r\n", 414
    rejects 'a request target over 8 KiB, before the line ends (414)', "GET /#{'u' * (9 * 1024)}", 414, stall: true
    rejects 'a Content-Length over --max-body-bytes, before the body is sent (413)',
            "POST /too-big HTTP/1.1\r\nHost: a\r\nContent-Length: #{max_body_bytes + 1}\r\n\r\n", 413, stall: true
    rejects 'a chunk size over --max-body-bytes, before its data is sent (413)',
            "#{chunked_head}#{(max_body_bytes + 1).to_s(16)}\r\n", 413, stall: true
    rejects 'a chunked body that grows over --max-body-bytes (413)',
            "#{chunked_head}258\r\n#{'c' * 600}\r\n258\r\n#{'c' * 600}\r\n0\r\n\r\n", 413
    rejects 'a head that stops arriving (408)', "GET /slow-head HTTP/1.1\r\nHost: a\r\n", 408, stall: true
    rejects 'a Content-Length body that stops arriving (408)',
            "POST /slow-body HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\nabc", 408, stall: true
    rejects 'a chunked body that stops arriving (408)', "#{chunked_head}5\r\nhel", 408, stall: true

    it 'accepts exactly 100 header fields' do
      responses, = exchange("GET /hundred HTTP/1.1\r\nHost: a\r\n#{(1..98).map { |i| "X-H#{i}: v\r\n" }.join}" \
                            "Connection: close\r\n\r\n")
      expect(responses.map(&:first)).to eq([200])
    end

    it 'accepts a body of exactly --max-body-bytes' do
      responses, = exchange("POST /just-fits HTTP/1.1\r\nHost: a\r\nContent-Length: #{max_body_bytes}\r\n" \
                            "Connection: close\r\n\r\n#{'b' * max_body_bytes}")
      expect(responses.map(&:first)).to eq([200])
    end
  end

  describe 'response headers from the application' do
    {
      'a header value with CR LF' => '/bad-header/crlf',
      'a header value with a bare LF' => '/bad-header/lf',
      'a header value with NUL' => '/bad-header/nul',
      'one element of an Array header value with CR LF' => '/bad-header/array',
      'a header name with CR LF' => '/bad-header/name',
      'a header value with CR LF on a streamed body' => '/bad-header/stream'
    }.each do |description, path|
      it "answers 500 to #{description} and never writes it" do
        responses, closed, raw = exchange("GET #{path} HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
        expect(responses.map(&:first)).to eq([500]), "got: #{raw.inspect[0, 400]}"
        expect(closed).to be(true)
        expect(served).to include("GET #{path}")
        expect(raw.downcase).not_to include('x-evil')
        expect(raw.downcase).not_to include('x-injected')
        expect(raw.downcase).not_to include('pwned')
        expect(raw).not_to include('never')
      end
    end
  end

  it 'keeps serving other connections after bad requests' do
    exchange("garbage\r\n\r\n")
    responses, = exchange("GET /still-alive HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
    expect(responses.map { |s, _h, b| [s, b] }).to eq([[200, 'served GET /still-alive']])
  end
end
