# frozen_string_literal: true

require 'spec_helper'
require 'tmpdir'

RSpec.describe 'Direct routes, request hooks and the page cache' do
  describe 'routes' do
    before(:all) { @server = start_shared_server(fixture('routes.ru'), '-e', 'production') }
    after(:all) { stop_quickly(@server) }

    let(:port) { @server.port }

    def calls
      http_get(port, '/calls').body.to_i
    end

    it 'answers handle_static routes from the engine, never entering the Rack app' do
      before = calls
      sock = TCPSocket.new('127.0.0.1', port)
      sock.write("GET /health HTTP/1.1\r\nHost: x\r\n\r\nGET /health?probe=1 HTTP/1.1\r\nHost: x\r\n\r\n" \
                 "HEAD /health HTTP/1.1\r\nHost: x\r\n\r\nGET /short HTTP/1.1\r\nHost: x\r\n\r\n")
      first = read_response(sock)
      expect(first[0..2]).to eq([200, first[1], 'ok'])
      expect(first[1]).to include('content-type' => 'text/plain', 'content-length' => '2')
      expect(first[1]['date']).to match(/GMT\z/)
      expect(read_response(sock)[2]).to eq('ok')
      head = read_response(sock, head: true)
      expect([head[0], head[1]['content-length'], head[3]]).to eq([200, '2', head[3].split("\r\n\r\n").first + "\r\n\r\n"])
      expect(read_response(sock)[2]).to eq('short form')
      # Only the /calls request itself reached the app.
      expect(calls).to eq(before + 1)
    ensure
      sock&.close
    end

    it 'uses the last registration and its headers' do
      response = http_get(port, '/replaced')
      expect([response.body, response['cache-control']]).to eq(%w[second no-store])
    end

    it 'falls through to the Rack app on a miss (other method, other path)' do
      sock = TCPSocket.new('127.0.0.1', port)
      sock.write("POST /health HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\nGET /health/ HTTP/1.1\r\nHost: x\r\n\r\n")
      expect(read_response(sock)[2]).to eq('rack POST /health')
      expect(read_response(sock)[2]).to eq('rack GET /health/')
    ensure
      sock&.close
    end

    it 'runs handle blocks with a Rack env, skipping the middleware' do
      response = http_get(port, '/v1/ping?x=1')
      expect([response.code, response.body, response['x-middleware']]).to eq(['200', 'pong x=1', nil])
      expect(http_get(port, '/other')['x-middleware']).to eq('yes')
    end

    it 'gives handler objects a Hyperion::Request' do
      response = Net::HTTP.start('127.0.0.1', port) do |http|
        http.post('/v1/echo?q=2', 'payload', 'x-test' => 'yes', 'content-type' => 'text/plain')
      end
      expect([response.code, response.body]).to eq(['201', 'POST|/v1/echo|q=2|HTTP/1.1|yes|payload'])
    end
  end

  describe 'registration errors' do
    it 'raises ArgumentError for an unknown method or a non-String path' do
      require 'hyperion'
      expect { Hyperion::Server.handle_static(:TRACE, '/x', 'y') }.to raise_error(ArgumentError, /unsupported method/)
      expect { Hyperion::Server.handle_static(:GET, :x, 'y') }.to raise_error(ArgumentError, /path must be a String/)
      expect { Hyperion::Server.handle(:BREW, '/x') { nil } }.to raise_error(ArgumentError, /unsupported method/)
      expect { Hyperion::Server.handle(:GET, '/x') }.to raise_error(ArgumentError, /handler/)
      expect { Hyperion::Server.handle_static(:GET, '/x', "a\r\nb", headers: { 'x' => "a\nb" }) }.to raise_error(ArgumentError)
    end
  end

  describe 'request hooks' do
    it 'run in order around Rack and static requests; a failing hook is logged and skipped' do
      server = start_server(fixture('hooks.ru'), '-e', 'production', '-C', fixture('hooks.rb'))
      expect(http_get(server.port, '/app').body).to eq('app')
      expect(http_get(server.port, '/static').body).to eq('static body')
      log = http_get(server.port, '/log').body.lines.map(&:chomp)
      expect(log).to start_with('start GET /app env=yes', 'end /app 200 NilClass',
                                'start GET /static env=nil', 'end /static 200 NilClass')
      expect(server.log).to include('request hook raised', 'a broken hook', 'hooks.rb')
    end
  end

  describe 'preload_static' do
    it 'serves every file of the directory from the page cache, with types from extensions' do
      Dir.mktmpdir do |dir|
        File.write(File.join(dir, 'a.txt'), 'text file')
        FileUtils.mkdir_p(File.join(dir, 'docs'))
        File.write(File.join(dir, 'docs', 'index.html'), '<p>index</p>')
        File.write(File.join(dir, 'with space.css'), 'body{}')
        server = start_server(fixture('echo.ru'), '-e', 'production', '--preload-static', dir)
        a = http_get(server.port, '/a.txt')
        expect([a.body, a['content-type'], a['content-length']]).to eq(['text file', 'text/plain', '9'])
        expect(http_get(server.port, '/docs/index.html')['content-type']).to eq('text/html')
        expect(http_get(server.port, '/docs/').body).to eq('<p>index</p>')
        expect(http_get(server.port, '/with%20space.css')['content-type']).to eq('text/css')
        expect(server.log).to match(/page cache: #{Regexp.escape(dir)} -> \/: 3 files, 27 bytes, [\d.]+ ms \(immutable\)/)
      end
    end

    it 'refuses to boot on a missing directory' do
      server = start_server(fixture('echo.ru'), '--preload-static', '/nonexistent/dir', wait: false)
      status = server.wait_exit(20)
      expect(status.exitstatus).not_to eq(0)
      expect(server.log).to include('/nonexistent/dir')
    end
  end
end
