# frozen_string_literal: true

require 'spec_helper'
require 'open3'

# HTTP/2 over plain TCP with prior knowledge (h2c), end to end with real clients: curl, nghttp,
# h2load, and the frame-level conformance cases in spec/h2/conformance.py (Python h2 +
# hyperframe from Debian).
RSpec.describe 'HTTP/2 (h2c prior knowledge)' do
  # Debian's interpreter, which has python3-h2 and python3-hyperframe (bin/setup).
  PYTHON = File.executable?('/usr/bin/python3') ? '/usr/bin/python3' : 'python3'
  CONFORMANCE = File.expand_path('../h2/conformance.py', __dir__)

  before(:all) do
    @server = start_shared_server(fixture('h2.ru'), '-e', 'production', '-t', '4',
                                  '--h2-max-total-streams', '64')
  end
  after(:all) { stop_quickly(@server) }

  let(:port) { @server.port }
  let(:base) { "http://127.0.0.1:#{port}" }

  def curl(*args)
    out, err, status = Open3.capture3('curl', '-sS', '--http2-prior-knowledge', *args)
    raise "curl failed: #{err}" unless status.success?

    out
  end

  it 'serves curl over h2c with an HTTP/2 Rack env' do
    text = curl('-H', 'cookie: a=1', '-H', 'cookie: b=2', "#{base}/env?q=1")
    expect(text).to include('SERVER_PROTOCOL="HTTP/2"', 'REQUEST_METHOD="GET"', 'PATH_INFO="/env"',
                            'QUERY_STRING="q=1"', 'SERVER_NAME="127.0.0.1"', "SERVER_PORT=\"#{port}\"",
                            "HTTP_HOST=\"127.0.0.1:#{port}\"", 'rack.url_scheme="http"', 'rack.hijack?=false',
                            'HTTP_COOKIE="a=1; b=2"')
  end

  it 'strips connection-specific headers the app sets and reports the HTTP version' do
    head = curl('-D', '-', '-o', '/dev/null', "#{base}/env")
    expect(head).to start_with('HTTP/2 200')
    expect(head).not_to match(/^connection:/i)
    expect(head).not_to match(/^keep-alive:/i)
    expect(head).to match(/^date: .* GMT/)
  end

  it 'streams request and response bodies' do
    payload = 'p' * 300_000
    out, status = Open3.capture2('curl', '-sS', '--http2-prior-knowledge', '--data-binary', '@-',
                                 '-D', '-', "#{base}/echo", stdin_data: payload)
    expect(status).to be_success
    expect(out).to include('x-length: 300000')
    expect(out.split("\r\n\r\n", 2).last).to eq(payload)
    expect(curl("#{base}/big").bytesize).to eq(100_000)
    expect(curl("#{base}/stream")).to eq("chunk 0\nchunk 1\nchunk 2\n")
    expect(curl("#{base}/file")).to eq(File.read(fixture('h2.ru')))
  end

  it 'answers HEAD and 204 without a body and static routes from the engine' do
    head = curl('-I', "#{base}/big")
    expect(head).to include('content-length: 100000')
    expect(curl('-o', '/dev/null', '-w', '%{http_code} %{http_version}', "#{base}/head204")).to eq('204 2')
    expect(curl("#{base}/static")).to eq('static ok')
  end

  it 'sends body trailers as trailing HEADERS (nghttp)' do
    out, status = Open3.capture2e('nghttp', '-v', "#{base}/trailers")
    expect(status).to be_success
    # One DATA frame per chunk the body yields, then the trailer field in a HEADERS frame.
    expect(out).to include('recv DATA frame <length=10, flags=0x00', 'recv DATA frame <length=8, flags=0x00')
    data_at = out.index('recv DATA frame')
    expect(out.index('x-checksum: abc123', data_at)).not_to be_nil
  end

  it 'sends the same body trailers as a chunked trailer section over HTTP/1.1' do
    data = raw_request(port, "GET /trailers HTTP/1.1\r\nHost: x\r\nTE: trailers\r\nConnection: close\r\n\r\n",
                       until_pattern: /0\r\n.*\r\n\r\n\z/m)
    expect(data).to include("transfer-encoding: chunked\r\n")
    expect(data).to end_with("0\r\nx-checksum: abc123\r\n\r\n")
  end

  it 'sends rack.early_hints as a 103 informational HEADERS frame before the response' do
    out, status = Open3.capture2e('nghttp', '-v', "#{base}/hints")
    expect(status).to be_success
    hints = out.index(':status: 103')
    final = out.index(':status: 200')
    expect(hints).not_to be_nil
    expect(final).to be > hints
    expect(out[hints...final]).to include('link: </style.css>; rel=preload; as=style')
    expect(out).to include('hints sent: true')
  end

  it 'runs rack.response_finished callbacks' do
    expect(curl("#{base}/finished")).to eq('finished')
    eventually { @server.log.include?('response finished callback ran') }
  end

  it 'answers every request of a short h2load run' do
    out, status = Open3.capture2e('h2load', '-c', '4', '-m', '10', '-n', '400', "#{base}/")
    expect(status).to be_success
    expect(out).to include('400 succeeded, 0 failed, 0 errored')
    out, = Open3.capture2e('h2load', '-c', '1', '-m', '50', '-n', '400', "#{base}/static")
    expect(out).to include('400 succeeded, 0 failed, 0 errored')
  end

  it 'does not hold a fast stream behind a slow one on the same connection (nghttp)' do
    # Both streams go out at once on one connection; the fast one's response ends first.
    out, status = Open3.capture2e('nghttp', '-v', "#{base}/slow?s=1", "#{base}/")
    expect(status).to be_success
    hello = out.index(/recv DATA frame <length=5, flags=0x01/)
    slow = out.index(/recv DATA frame <length=4, flags=0x01/)
    expect(hello).not_to be_nil
    expect(slow).not_to be_nil
    expect(hello).to be < slow
  end

  it 'answers HTTP/1.1 Upgrade: h2c as HTTP/1.1' do
    response = http_get(port, '/env', 'Connection' => 'Upgrade, HTTP2-Settings', 'Upgrade' => 'h2c',
                                      'HTTP2-Settings' => 'AAMAAABkAAQAAP__')
    expect(response.code).to eq('200')
    expect(response.body).to include('SERVER_PROTOCOL="HTTP/1.1"', 'rack.hijack?=true')
  end

  it 'passes the protocol conformance cases (frame errors, flow control, stream states, HPACK, floods)' do
    out, status = Open3.capture2e(PYTHON, CONFORMANCE, '127.0.0.1', port.to_s)
    failures = out.lines.grep(/^FAIL/)
    expect(failures).to be_empty, out
    expect(status).to be_success, out
    expect(out).to match(/^\d+ cases, 0 failed$/)
    # The server is still serving after every abuse case.
    expect(curl("#{base}/")).to eq('hello')
  end
end

RSpec.describe 'HTTP/2 limits' do
  it 'refuses streams past h2_max_total_streams with REFUSED_STREAM and keeps the connection' do
    server = start_server(fixture('h2.ru'), '-e', 'production', '-t', '4', '--h2-max-total-streams', '1')
    # nghttp opens both streams on one connection: the slow one holds the only slot.
    out, = Open3.capture2e('nghttp', '-v', "http://127.0.0.1:#{server.port}/slow?s=1",
                           "http://127.0.0.1:#{server.port}/")
    expect(out).to include('recv RST_STREAM frame')
    expect(out).to match(/error_code=REFUSED_STREAM/)
    # The slow stream still completes on that connection.
    expect(out).to match(/recv DATA frame <length=4, flags=0x01/)
  end

  it 'can turn h2c off: the preface is then a bad request' do
    server = start_server(fixture('h2.ru'), '-e', 'production', '--no-h2c')
    _, status = Open3.capture2e('curl', '-sS', '--http2-prior-knowledge', "http://127.0.0.1:#{server.port}/")
    expect(status).not_to be_success
    expect(http_get(server.port, '/').body).to eq('hello')
  end
end
