# frozen_string_literal: true

require 'spec_helper'
require 'json'
require 'digest'
require 'time'
require 'tmpdir'

RSpec.describe 'HTTP/1.1 end to end' do
  before(:all) do
    @app = start_shared_server(fixture('e2e_app.ru'))
    @echo = start_shared_server(fixture('echo.ru'))
    @tmp = Dir.mktmpdir('hyperion-e2e-http11')
  end

  after(:all) do
    stop_quickly(@app)
    stop_quickly(@echo)
    FileUtils.rm_rf(@tmp) if @tmp
  end

  let(:port) { @app.port }

  def connect(server_port = port)
    TCPSocket.new('127.0.0.1', server_port).tap { |s| (@sockets ||= []) << s }
  end

  after { (@sockets || []).each { |s| s.close unless s.closed? } }

  def marker(name)
    File.join(@tmp, "#{name}-#{rand(1 << 32)}")
  end

  # GET on the echo.ru server over a raw socket; returns the env the app saw.
  def echo_env(request)
    data = raw_request(@echo.port, request)
    status, _headers, body = parse_responses(data).first
    expect(status).to eq(200), data
    JSON.parse(body)
  end

  describe 'plain requests over Net::HTTP' do
    it 'answers a GET with status, body, content-length, date and the app headers' do
      response = http_get(port, '/hello')
      expect(response.code).to eq('200')
      expect(response.body).to eq('hello world')
      expect(response['content-length']).to eq('11')
      expect(response['date']).not_to be_nil
      expect { Time.httpdate(response['date']) }.not_to raise_error
      expect(response['x-custom-header']).to eq('Custom-Value')
    end

    it 'puts the lowercase header names of the app on the wire as given' do
      data = raw_request(port, "GET /hello HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
      expect(data).to start_with("HTTP/1.1 200 OK\r\n")
      expect(data).to include("\r\nx-custom-header: Custom-Value\r\n")
      expect(data).to include("\r\ncontent-type: text/plain\r\n")
    end

    it 'hands a POST body to the app' do
      response = Net::HTTP.start('127.0.0.1', port) do |http|
        http.post('/echo', 'name=hyperion&x=1', 'content-type' => 'application/x-www-form-urlencoded')
      end
      expect(response.code).to eq('200')
      expect(response.body).to eq('POST /echo name=hyperion&x=1')
    end
  end

  describe 'persistent connections' do
    it 'answers two sequential requests on one socket and keeps it open' do
      sock = connect
      sock.write("GET /path/one HTTP/1.1\r\nHost: a\r\n\r\n")
      status, headers, body = read_response(sock)
      expect([status, body]).to eq([200, 'you asked for /path/one'])
      expect(headers['connection']).not_to eq('close')

      sock.write("GET /path/two HTTP/1.1\r\nHost: a\r\n\r\n")
      status, _headers, body = read_response(sock)
      expect([status, body]).to eq([200, 'you asked for /path/two'])

      # Still open: a third request on the same socket is answered too.
      sock.write("GET /path/three HTTP/1.1\r\nHost: a\r\n\r\n")
      expect(read_response(sock)[2]).to eq('you asked for /path/three')
    end

    it 'answers three pipelined requests sent in one write, in order' do
      sock = connect
      sock.write(%w[first second third].map { |p| "GET /path/#{p} HTTP/1.1\r\nHost: a\r\n\r\n" }.join)
      bodies = Array.new(3) { read_response(sock) }.map { |status, _h, body| [status, body] }
      expect(bodies).to eq([[200, 'you asked for /path/first'], [200, 'you asked for /path/second'],
                            [200, 'you asked for /path/third']])
    end

    it 'closes an HTTP/1.0 connection without keep-alive after the response' do
      sock = connect
      sock.write("GET /path/old HTTP/1.0\r\nHost: a\r\n\r\n")
      data, closed = read_to_eof(sock)
      expect(closed).to be(true)
      status, _headers, body = parse_responses(data).first
      expect([status, body]).to eq([200, 'you asked for /path/old'])
      expect(data).to match(%r{\AHTTP/1\.[01] 200})
    end

    it 'keeps an HTTP/1.0 connection with Connection: keep-alive open' do
      sock = connect
      sock.write("GET /path/ka1 HTTP/1.0\r\nHost: a\r\nConnection: keep-alive\r\n\r\n")
      status, headers, body = read_response(sock)
      expect([status, body]).to eq([200, 'you asked for /path/ka1'])
      expect(headers['connection']).to match(/\Akeep-alive\z/i)

      sock.write("GET /path/ka2 HTTP/1.0\r\nHost: a\r\nConnection: keep-alive\r\n\r\n")
      status, _headers, body = read_response(sock)
      expect([status, body]).to eq([200, 'you asked for /path/ka2'])
    end

    it 'honours Connection: close on HTTP/1.1: says so and closes' do
      sock = connect
      sock.write("GET /path/bye HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
      data, closed = read_to_eof(sock)
      expect(closed).to be(true)
      status, headers, body = parse_responses(data).first
      expect([status, body]).to eq([200, 'you asked for /path/bye'])
      expect(headers['connection']).to eq('close')
    end
  end

  describe 'request bodies' do
    it 'de-chunks a chunked upload with a trailer and sets CONTENT_LENGTH to the decoded size' do
      request = "POST /upload HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n" \
                "5\r\nhello\r\n1\r\n,\r\nA\r\n chunked w\r\n5\r\norld!\r\n0\r\nX-Checksum: abc\r\n\r\n"
      env = echo_env(request)
      expect(env['body']).to eq('hello, chunked world!')
      expect(env['CONTENT_LENGTH']).to eq('21')
    end

    it 'closes the temp file of a large body after the response, even when the app replaced rack.input' do
      body = 'x' * 200_000
      sock = connect(port)
      sock.write("POST /keep_input HTTP/1.1\r\nHost: a\r\nContent-Length: #{body.bytesize}\r\n\r\n#{body}")
      status, _headers, answer = read_response(sock)
      expect([status, answer]).to eq([200, 'File'])
      sock.write("GET /kept_input HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
      status, _headers, answer = read_response(sock)
      expect([status, answer]).to eq([200, 'File closed=true'])
    end

    it 'sends 100 Continue for Expect: 100-continue before the body is sent' do
      sock = connect(@echo.port)
      sock.write("POST /expect HTTP/1.1\r\nHost: a\r\nContent-Length: 11\r\nExpect: 100-continue\r\n\r\n")
      interim = read_until(sock, /\r\n\r\n/)
      expect(interim).to eq("HTTP/1.1 100 Continue\r\n\r\n")

      sock.write('hello there')
      status, _headers, body = read_response(sock)
      expect(status).to eq(200)
      expect(JSON.parse(body)['body']).to eq('hello there')
    end
  end

  describe 'bodiless responses' do
    it 'answers HEAD with the GET headers (content-length included) and no body' do
      get_length = http_get(port, '/hello')['content-length']
      sock = connect
      sock.write("HEAD /hello HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
      data, closed = read_to_eof(sock)
      expect(closed).to be(true)
      head, rest = data.split("\r\n\r\n", 2)
      expect(head).to start_with('HTTP/1.1 200')
      expect(head).to match(/\r\ncontent-length: #{get_length}(\r\n|\z)/i)
      expect(rest).to eq('')
    end

    %w[204 304].each do |code|
      it "sends a #{code} with neither body nor content-length" do
        sock = connect
        # A second request follows: if the server framed the bodiless response wrongly, the
        # second answer would not line up.
        sock.write("GET /#{code} HTTP/1.1\r\nHost: a\r\n\r\nGET /path/after HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
        data, closed = read_to_eof(sock)
        expect(closed).to be(true)
        expect(data).to start_with("HTTP/1.1 #{code} ")
        first, second = data.split(%r{(?=HTTP/1\.1 200 )}, 2)
        expect(first).to end_with("\r\n\r\n")
        expect(first).not_to match(/^content-length:/i)
        expect(first).not_to match(/^transfer-encoding:/i)
        expect(parse_responses(second).first[2]).to eq('you asked for /path/after')
      end
    end
  end

  describe 'streamed responses' do
    it 'sends an each-body without content-length chunked, intact' do
      sock = connect
      sock.write("GET /stream HTTP/1.1\r\nHost: a\r\n\r\n")
      status, headers, body, raw = read_response(sock)
      expect(status).to eq(200)
      expect(headers['transfer-encoding']).to eq('chunked')
      expect(headers).not_to have_key('content-length')
      expect(body).to eq('alpha-beta-gamma-delta')
      expect(raw).to end_with("0\r\n\r\n")
      # The connection is still usable after the chunked body.
      sock.write("GET /path/next HTTP/1.1\r\nHost: a\r\n\r\n")
      expect(read_response(sock)[2]).to eq('you asked for /path/next')
    end

    it 'sends an each-body with an app-set content-length un-chunked' do
      sock = connect
      sock.write("GET /stream_cl HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
      data, = read_to_eof(sock)
      head, body = data.split("\r\n\r\n", 2)
      expect(head).to match(/\r\ncontent-length: 22(\r\n|\z)/i)
      expect(head).not_to match(/^transfer-encoding:/i)
      expect(body).to eq('alpha-beta-gamma-delta')
    end

    it 'closes the connection when an each-body delivers less than its content-length' do
      sock = connect
      sock.write("GET /stream_cl_short HTTP/1.1\r\nHost: a\r\n\r\nGET /path/reused HTTP/1.1\r\nHost: a\r\n\r\n")
      data, closed = read_to_eof(sock)
      expect(closed).to be(true)
      expect(data).to start_with('HTTP/1.1 200')
      expect(data).to end_with("\r\n\r\nalpha-beta-gamma-delta")
      expect(data).not_to include('/path/reused')
    end

    it 'sends a 10 MiB body byte-exact' do
      expected = Digest::SHA256.hexdigest(Random.new(42).bytes(10 * 1024 * 1024))
      response = http_get(port, '/big')
      expect(response.code).to eq('200')
      expect(response.body.bytesize).to eq(10 * 1024 * 1024)
      expect(Digest::SHA256.hexdigest(response.body)).to eq(expected)
    end
  end

  it 'serves 200 concurrent connections' do
    results = Array.new(200) do |i|
      Thread.new do
        sock = TCPSocket.new('127.0.0.1', port)
        sock.write("GET /path/c#{i} HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
        data, = read_to_eof(sock, timeout: 30)
        status, _headers, body = parse_responses(data).first
        [status, body]
      ensure
        sock&.close
      end
    end.map(&:value)
    expect(results).to eq(Array.new(200) { |i| [200, "you asked for /path/c#{i}"] })
  end

  describe 'application failures' do
    it 'answers 500 when the app raises, logs it with a backtrace, and keeps serving' do
      response = http_get(port, '/raise')
      expect(response.code).to eq('500')
      eventually { @app.log.include?('boom-from-app') }
      log = @app.log
      expect(log).to match(/ERROR .*RuntimeError: boom-from-app/)
      expect(log).to match(/^\s+.*e2e_app\.ru:\d+/)
      expect(http_get(port, '/hello').body).to eq('hello world')
    end

    it 'answers 500 for a header value with CR LF and never puts the injected header on the wire' do
      data = raw_request(port, "GET /evil_header HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
      expect(data).to start_with('HTTP/1.1 500')
      expect(data).not_to include('pwned')
      expect(data.downcase).not_to include('set-cookie')
      expect(data).not_to include('x-evil')
    end
  end

  it 'sends each element of an Array header value as its own header line' do
    data = raw_request(port, "GET /cookies HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
    expect(data).to start_with('HTTP/1.1 200')
    head = data.split("\r\n\r\n", 2).first
    expect(head.lines.map(&:chomp).grep(/\Aset-cookie:/i)).to eq(['set-cookie: a=1', 'set-cookie: b=2'])
  end

  describe 'Rack 3 lifecycle hooks' do
    it 'calls rack.response_finished callbacks' do
      path = marker('finished')
      expect(http_get(port, "/finished?marker=#{path}").body).to eq('will finish')
      eventually { File.exist?(path) && !File.read(path).empty? }
      expect(File.read(path)).to eq('finished status=200 error=nil')
    end

    it 'closes the body after a normal response' do
      path = marker('close')
      expect(http_get(port, "/close?marker=#{path}").body).to eq('onetwo')
      eventually { File.exist?(path) && !File.read(path).empty? }
      expect(File.read(path)).to eq('closed')
    end

    it "closes the body when the body's each raises, and logs the error" do
      path = marker('close-raise')
      raw_request(port, "GET /close_raise?marker=#{path} HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
      eventually { File.exist?(path) && !File.read(path).empty? }
      expect(File.read(path)).to eq('closed')
      eventually { @app.log.include?('each exploded') }
      expect(http_get(port, '/hello').body).to eq('hello world')
    end
  end

  describe 'the Rack env' do
    it 'carries method, script name, path, query string, protocol and headers' do
      env = echo_env("GET /some/path?a=1&b=two HTTP/1.1\r\nHost: example.com:8080\r\nX-Custom-Thing: yes\r\n" \
                     "Accept: text/html\r\nConnection: close\r\n\r\n")
      expect(env).to include(
        'REQUEST_METHOD' => 'GET', 'SCRIPT_NAME' => '', 'PATH_INFO' => '/some/path', 'QUERY_STRING' => 'a=1&b=two',
        'SERVER_PROTOCOL' => 'HTTP/1.1', 'SERVER_NAME' => 'example.com', 'SERVER_PORT' => '8080',
        'HTTP_HOST' => 'example.com:8080', 'HTTP_X_CUSTOM_THING' => 'yes', 'HTTP_ACCEPT' => 'text/html',
        'REMOTE_ADDR' => '127.0.0.1', 'rack.url_scheme' => 'http', 'rack.input.encoding' => 'ASCII-8BIT'
      )
      expect(env['SERVER_SOFTWARE']).to start_with('Hyperion/')
    end

    it 'has no HTTP_HOST for an HTTP/1.0 request without Host, and names the listener instead' do
      env = echo_env("GET /old HTTP/1.0\r\nAccept: */*\r\n\r\n")
      expect(env).not_to have_key('HTTP_HOST')
      expect(env).to include('SERVER_NAME' => '127.0.0.1', 'HTTP_ACCEPT' => '*/*', 'PATH_INFO' => '/old')
      expect(env['SERVER_PORT']).to match(/\A\d+\z/)
    end

    it 'has an empty QUERY_STRING when there is none' do
      env = echo_env("GET /plain HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
      expect(env['QUERY_STRING']).to eq('')
      expect(env['PATH_INFO']).to eq('/plain')
    end

    it 'shares frozen REMOTE_ADDR, HTTP_HOST, SERVER_NAME and SERVER_PORT between requests that repeat them' do
      request = "GET /a HTTP/1.1\r\nHost: shared.example:8081\r\nConnection: close\r\n\r\n"
      first = echo_env(request)
      second = echo_env(request.sub('/a', '/b'))
      shared = %w[REMOTE_ADDR HTTP_HOST SERVER_NAME SERVER_PORT]
      expect(second).to include('HTTP_HOST' => 'shared.example:8081', 'SERVER_NAME' => 'shared.example',
                                'SERVER_PORT' => '8081', 'REMOTE_ADDR' => '127.0.0.1')
      expect(second['frozen']).to include(*shared)
      expect(second['object_ids'].slice(*shared)).to eq(first['object_ids'].slice(*shared))
      # Per-request values stay the request's own.
      expect(second['frozen']).not_to include('PATH_INFO', 'REQUEST_URI')
      expect(second['object_ids']['PATH_INFO']).not_to eq(first['object_ids']['PATH_INFO'])

      other = echo_env("GET / HTTP/1.1\r\nHost: other.example\r\nConnection: close\r\n\r\n")
      expect(other).to include('HTTP_HOST' => 'other.example', 'SERVER_NAME' => 'other.example',
                               'SERVER_PORT' => '80')
      expect(other['object_ids']['HTTP_HOST']).not_to eq(first['object_ids']['HTTP_HOST'])
      expect(echo_env(request)).to include('HTTP_HOST' => 'shared.example:8081', 'SERVER_NAME' => 'shared.example')
    end

    it 'splits an IPv6 Host into SERVER_NAME with brackets and SERVER_PORT' do
      env = echo_env("GET / HTTP/1.1\r\nHost: [::1]:8080\r\nConnection: close\r\n\r\n")
      expect(env['SERVER_NAME']).to eq('[::1]')
      expect(env['SERVER_PORT']).to eq('8080')
    end

    it 'uses port 80 for a Host without a port' do
      env = echo_env("GET / HTTP/1.1\r\nHost: example.org\r\nConnection: close\r\n\r\n")
      expect(env['SERVER_NAME']).to eq('example.org')
      expect(env['SERVER_PORT']).to eq('80')
    end

    it 'sets CONTENT_TYPE and CONTENT_LENGTH without HTTP_ duplicates, and a binary rack.input' do
      body = "caf\xC3\xA9 \xFF".b
      env = echo_env("POST /form HTTP/1.1\r\nHost: h\r\nContent-Type: application/octet-stream\r\n" \
                     "Content-Length: #{body.bytesize}\r\nConnection: close\r\n\r\n#{body}")
      expect(env).to include('REQUEST_METHOD' => 'POST', 'CONTENT_TYPE' => 'application/octet-stream',
                             'CONTENT_LENGTH' => body.bytesize.to_s, 'rack.input.encoding' => 'ASCII-8BIT')
      expect(env).not_to have_key('HTTP_CONTENT_TYPE')
      expect(env).not_to have_key('HTTP_CONTENT_LENGTH')
      expect(env['body']).to eq(body.bytes)
    end

    it 'does not turn a header name with an underscore into an HTTP_ variable' do
      env = echo_env("GET / HTTP/1.1\r\nHost: h\r\nX-Forwarded_For: evil\r\nX-Forwarded-For: 10.0.0.1\r\n" \
                     "Connection: close\r\n\r\n")
      expect(env['HTTP_X_FORWARDED_FOR']).to eq('10.0.0.1')
      expect(env.values.grep(String)).not_to include('evil')
    end

    it 'does not produce HTTP_X_FORWARDED_FOR from an underscore header alone' do
      env = echo_env("GET / HTTP/1.1\r\nHost: h\r\nX-Forwarded_For: evil\r\nConnection: close\r\n\r\n")
      expect(env).not_to have_key('HTTP_X_FORWARDED_FOR')
    end
  end
end
