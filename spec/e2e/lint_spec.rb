# frozen_string_literal: true

require 'spec_helper'

# Rack::Lint (Rack 3) checks the env, rack.input and the streaming body interface the server
# hands to the app. A violation raises inside the app, which the server answers with 500, so
# every example asserts a 200 and the exact body.
RSpec.describe 'Rack::Lint through the real server' do
  before(:all) { @server = start_shared_server(fixture('lint.ru')) }
  after(:all) { stop_quickly(@server) }

  let(:port) { @server.port }

  def post(path, body, headers = {})
    Net::HTTP.start('127.0.0.1', port) do |http|
      http.post(path, body, { 'content-type' => 'text/plain' }.merge(headers))
    end
  end

  def expect_lint_clean(response, body)
    expect(response.code).to eq('200'), "#{response.code}: #{response.body}\n#{@server.log}"
    expect(response.body).to eq(body)
  end

  it 'adds Lint only in development: in production the same violation is served' do
    server = start_server(fixture('lint.ru'), '-e', 'production')
    response = http_get(server.port, '/violation')
    expect([response.code, response.body]).to eq(['200', 'should not pass'])
  ensure
    stop_quickly(server)
  end

  it 'really runs Lint: a violating response becomes a 500' do
    response = http_get(port, '/violation')
    expect(response.code).to eq('500')
    expect(response.body).not_to include('should not pass')
    eventually { @server.log.include?('Rack::Lint::LintError') }
  end

  it 'passes Lint for a GET with a query string' do
    expect_lint_clean(http_get(port, '/get?x=1'), 'get x=1')
  end

  it 'passes Lint for a HEAD' do
    response = Net::HTTP.start('127.0.0.1', port) { |http| http.head('/head_ok') }
    expect(response.code).to eq('200')
    expect(response['content-length']).to eq('5')
  end

  it 'passes Lint for a POST with a body' do
    expect_lint_clean(post('/post', 'payload=1'), 'post payload=1')
  end

  it 'passes Lint for a POST with an empty body' do
    expect_lint_clean(post('/post', ''), 'post ')
  end

  it 'passes Lint for a chunked POST' do
    data = raw_request(port, "POST /post HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n" \
                             "3\r\nabc\r\n3\r\ndef\r\n0\r\n\r\n")
    status, _headers, body = parse_responses(data).first
    expect([status, body]).to eq([200, 'post abcdef']), data
  end

  it 'passes Lint for an each-body streamed response' do
    expect_lint_clean(http_get(port, '/each'), 'one-two-three')
  end

  it 'passes Lint for a callable (Rack 3 streaming) body' do
    expect_lint_clean(http_get(port, '/callable'), 'ab')
  end

  it 'passes Lint reading rack.input with read(n), gets, each and read' do
    response = post('/read', "abcdef\nline two\nline three\n")
    expect_lint_clean(response, [
      'first="abc"', 'line="def\n"', 'rest=["line two\n", "line three\n"]', 'tail=""', 'eof_read_n="nil"'
    ].join("\n"))
  end

  it 'passes Lint reading rack.input with read(n, buffer)' do
    expect_lint_clean(post('/read_buffer', '0123456789'), '0123|4567|89')
  end

  it 'passes Lint reading the input of requests without a body, even after one was closed' do
    empty = ['first=nil', 'line=nil', 'rest=[]', 'tail=""', 'eof_read_n="nil"'].join("\n")
    expect_lint_clean(http_get(port, '/read'), empty)
    expect_lint_clean(http_get(port, '/close_input'), 'closed')
    expect_lint_clean(http_get(port, '/read'), empty)
    expect_lint_clean(http_get(port, '/read_buffer'), '')
    expect_lint_clean(post('/read', "after\n"), ['first="aft"', 'line="er\n"', 'rest=[]', 'tail=""', 'eof_read_n="nil"'].join("\n"))
  end
end
