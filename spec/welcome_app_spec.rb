# frozen_string_literal: true

require 'rack'
require 'rack/lint'
require 'rack/mock_request'
require 'hyperion/welcome_app'

RSpec.describe Hyperion::WelcomeApp do
  let(:request) { Rack::MockRequest.new(Rack::Lint.new(described_class.new)) }

  it 'serves a small HTML page on GET /' do
    response = request.get('/')
    expect(response.status).to eq(200)
    expect(response.headers['content-type']).to eq('text/html; charset=utf-8')
    expect(response.headers['content-length']).to eq(response.body.bytesize.to_s)
    expect(response.body).to include("Hyperion #{Hyperion::VERSION} is running")
    expect(response.body).to include('bundle exec hyperion path/to/config.ru')
    expect(response.body).to start_with('<!DOCTYPE html>')
    expect(response.body.bytesize).to be < 4096
  end

  it 'loads nothing from elsewhere' do
    body = request.get('/').body
    expect(body).not_to match(/<(a|script|link|img)\b/i)
    expect(body).not_to match(%r{https?://})
  end

  it 'answers HEAD / with the GET headers and no body' do
    get = request.get('/')
    head = request.request('HEAD', '/')
    expect(head.status).to eq(200)
    expect(head.body).to be_empty
    expect(head.headers['content-length']).to eq(get.headers['content-length'])
  end

  it 'returns lowercase header names as Rack 3 requires' do
    # Called directly: MockResponse would normalise the names and hide a mistake.
    _status, headers, _body = described_class.new.call(Rack::MockRequest.env_for('/'))
    expect(headers.keys).to include('content-type', 'content-length')
    headers.each_key { |name| expect(name).to eq(name.downcase) }
  end

  it 'returns 404 text/plain for any other path' do
    %w[/favicon.ico /index.html /a/b].each do |path|
      response = request.get(path)
      expect(response.status).to eq(404), path
      expect(response.headers['content-type']).to start_with('text/plain')
      expect(response.body).to eq("Not Found\n")
      expect(response.headers['content-length']).to eq('10')
    end
    expect(request.request('HEAD', '/missing').body).to be_empty
  end

  it 'returns 405 with an allow header for other methods' do
    %w[POST PUT DELETE PATCH OPTIONS].each do |method|
      response = request.request(method, '/', input: 'x=1')
      expect(response.status).to eq(405), method
      expect(response.headers['allow']).to eq('GET, HEAD')
      expect(response.body).to eq("Method Not Allowed\n")
    end
  end
end
