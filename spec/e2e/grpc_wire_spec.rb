# frozen_string_literal: true

require 'spec_helper'
require 'fileutils'
require 'json'
require 'open3'
require 'tmpdir'

# What gRPC relies on, frame by frame (spec/h2/fetch.py, Python h2): body trailers as a
# trailing HEADERS frame, one DATA frame per yielded chunk, the request's `te`, and a request
# body that rack.input reads while it arrives.
RSpec.describe 'gRPC on the wire (HTTP/2 frames)', :e2e do
  # Debian's interpreter, which has python3-h2 (bin/setup).
  let(:python) { File.executable?('/usr/bin/python3') ? '/usr/bin/python3' : 'python3' }
  let(:fetch_script) { File.expand_path('../h2/fetch.py', __dir__) }

  def fetch(path, method: 'GET', headers: [], body: [], reset: false, open: false)
    request = { method: method, path: path, headers: headers, body: body, reset: reset, open: open }
    out, status = Open3.capture2e(python, fetch_script, @server.port.to_s, JSON.generate(request))
    expect(status).to be_success, out
    JSON.parse(out)
  end

  def grpc_post(path, body: ['x'], **opts)
    fetch(path, method: 'POST', headers: [%w[content-type application/grpc]], body: body, **opts)
  end

  def data(response)
    response['data'].map { |frame| frame['bytes'] }
  end

  shared_examples 'response trailers' do
    it 'ends the stream with a trailing HEADERS frame carrying the body trailers' do
      response = grpc_post('/trailers/ok')
      expect(response['status']).to eq(200)
      expect(data(response)).to eq(%w[one two three])
      expect(response['data'].map { |frame| frame['end_stream'] }).to all(be(false))
      expect(response['trailers']).to eq('fields' => [%w[grpc-status 0], %w[grpc-message fine]],
                                         'end_stream' => true)
    end
  end

  context 'in development (the app wrapped in Rack::Lint)' do
    before(:all) do
      @tmp = Dir.mktmpdir('hyperion-grpc-wire')
      @record = File.join(@tmp, 'record')
      @server = start_shared_server('-t', '2', fixture('grpc_wire.ru'), env: { 'RECORD_FILE' => @record })
    end

    after(:all) do
      @server&.stop
      FileUtils.rm_rf(@tmp) if @tmp
    end

    include_examples 'response trailers'

    it 'drops pseudo-header and connection-specific trailer names' do
      response = grpc_post('/trailers/filtered')
      expect(response['trailers']).to eq('fields' => [%w[grpc-status 0]], 'end_stream' => true)
    end

    it 'logs trailers that raise and ends the stream normally' do
      response = grpc_post('/trailers/raise')
      expect(response['reset']).to be_nil
      expect(data(response)).to eq(['one', ''])
      expect(response['data'].last['end_stream']).to be(true)
      expect(response['trailers']).to be_nil
      expect(@server.log).to include('body#trailers raised')
    end

    it 'logs trailers that are not a Hash and ends the stream normally' do
      response = grpc_post('/trailers/string')
      expect(response['reset']).to be_nil
      expect(response['data'].last).to eq('bytes' => '', 'end_stream' => true)
      expect(response['trailers']).to be_nil
      expect(@server.log).to include('body#trailers returned String, not a Hash')
    end

    it 'sends each chunk of a body without trailers as its own DATA frame, then END_STREAM' do
      response = fetch('/plain')
      expect(data(response)).to eq(['a', 'b', 'c', ''])
      expect(response['data'].map { |frame| frame['end_stream'] }).to eq([false, false, false, true])
      expect(response['trailers']).to be_nil
    end

    it 'passes te: trailers to the app as HTTP_TE' do
      response = fetch('/env', method: 'POST', headers: [%w[te trailers], %w[content-type application/grpc]],
                               body: ['x'])
      env = JSON.parse(data(response).join)
      expect(env).to include('HTTP_TE' => 'trailers', 'CONTENT_TYPE' => 'application/grpc',
                             'SERVER_PROTOCOL' => 'HTTP/2')
    end

    it 'reads a streamed body with read(n), read(n, buffer), gets, each and read per the Rack SPEC' do
      response = grpc_post('/input', body: ["abcde", "fg\nhi", "jk\n", 'lmn', 'op'])
      seen = JSON.parse(data(response).join)
      expect(seen).to eq(['abc', 'de', 'de', "fg\n", '', "hijk\nlmnop", nil, '', nil, ['ASCII-8BIT']])
    end

    it 'hands request bodies over binary-clean, streamed or not' do
      bytes = (0..255).map(&:chr).join.b * 4
      # fetch.py sends each character of a piece as one Latin-1 byte.
      pieces = [bytes[0, 300], bytes[300..]].map { |piece| piece.force_encoding('ISO-8859-1').encode('UTF-8') }
      [[%w[content-type application/grpc]], [%w[content-type application/octet-stream]]].each do |headers|
        response = fetch('/binary', method: 'POST', headers: headers, body: pieces)
        expect(data(response).join).to eq("#{bytes.bytes.sum} #{bytes.bytesize}")
      end
    end

    it 'lets Thread#kill end a thread blocked reading a body that is still arriving' do
      response = grpc_post('/kill-reader', body: ['a'], open: true)
      expect(data(response).join).to eq('killed')
    end

    it 'raises Hyperion::InputError in a reader when the client resets the stream' do
      File.write(@record, '')
      grpc_post('/until-reset', body: %w[a b], reset: true)
      deadline = Process.clock_gettime(Process::CLOCK_MONOTONIC) + 10
      sleep 0.05 while File.read(@record).empty? && Process.clock_gettime(Process::CLOCK_MONOTONIC) < deadline
      expect(File.read(@record)).to eq('Hyperion::Native::InputError: the client reset the stream before the request body ended')
    end
  end

  context 'in production' do
    before(:all) do
      @server = start_shared_server('-e', 'production', '-t', '2', fixture('grpc_wire.ru'))
    end

    after(:all) { @server&.stop }

    include_examples 'response trailers'
  end
end
