# frozen_string_literal: true

require 'spec_helper'
require 'net/http'
require 'tmpdir'

# The admin endpoints end to end: real servers, real sockets, real signals.
RSpec.describe 'Admin endpoints (/-/metrics, /-/quit)' do
  TOKEN = 'spec-admin-token-0123456789abcdef'

  around do |example|
    Dir.mktmpdir('hyperion-e2e-admin') do |dir|
      @tmp = dir
      example.run
    end
  end

  after { kill_started_process_groups }

  def admin_server(*args, env: {}, **opts)
    start_server(*args, fixture('admin.ru'), env: { 'HYPERION_ADMIN_TOKEN' => TOKEN }.merge(env), **opts)
  end

  def request(port, method, path, token: nil)
    Net::HTTP.start('127.0.0.1', port, open_timeout: 10, read_timeout: 20) do |http|
      req = Net::HTTPGenericRequest.new(method, method == 'POST', method != 'HEAD', path)
      req['X-Hyperion-Admin-Token'] = token if token
      req.body = '' if method == 'POST'
      http.request(req)
    end
  end

  # Runs the server to its end with `args` and returns [exit status, output].
  def boot_failure(*args, env: {})
    server = start_server(*args, fixture('admin.ru'), env: env, wait: false)
    status = server.wait_exit(20)
    [status&.exitstatus, server.log]
  end

  it 'answers /-/metrics with a valid token while every application thread is busy' do
    parked = File.join(@tmp, 'parked')
    release = File.join(@tmp, 'release')
    server = admin_server('-t', '1', env: { 'ADMIN_PARKED' => parked, 'ADMIN_RELEASE' => release })
    slow = Thread.new { request(server.port, 'GET', '/park') }
    eventually { File.exist?(parked) }

    response = request(server.port, 'GET', '/-/metrics', token: TOKEN)
    expect(response.code).to eq('200')
    expect(response['content-type']).to eq('text/plain; version=0.0.4')
    expect(response['cache-control']).to eq('no-store')
    expect(response.body).to include("# TYPE hyperion_requests_total counter\n")
    expect(response.body).to match(/^hyperion_requests_in_flight\{worker_id="0"\} [1-9]\d*$/)

    File.write(release, '')
    expect(slow.value.body).to eq('released')
  end

  it 'leaves /-/ paths to the application without a valid token' do
    server = admin_server
    [nil, 'wrong-token-0123456789abcdef', TOKEN.chop].each do |token|
      response = request(server.port, 'GET', '/-/metrics', token: token)
      expect([response.code, response.body]).to eq(['404', 'app 404 GET /-/metrics'])
      response = request(server.port, 'POST', '/-/quit', token: token)
      expect([response.code, response.body]).to eq(['404', 'app 404 POST /-/quit'])
    end
    expect(server).to be_alive
    expect(server.log).to include('admin endpoints /-/metrics and /-/quit on the application listener')
    expect(server.log).not_to include(TOKEN)
  end

  it 'answers a wrong method with a valid token 405 with allow' do
    server = admin_server
    response = request(server.port, 'POST', '/-/metrics', token: TOKEN)
    expect([response.code, response['allow']]).to eq(['405', 'GET, HEAD'])
    response = request(server.port, 'GET', '/-/quit', token: TOKEN)
    expect([response.code, response['allow']]).to eq(['405', 'POST'])
    expect(server).to be_alive
  end

  it 'has no admin endpoints without a token' do
    server = start_server(fixture('admin.ru'))
    response = request(server.port, 'POST', '/-/quit', token: TOKEN)
    expect(response.body).to eq('app 404 POST /-/quit')
    expect(server).to be_alive
  end

  it 'stops a single server on POST /-/quit, which exits 0' do
    server = admin_server
    response = request(server.port, 'POST', '/-/quit', token: TOKEN)
    expect(response.code).to eq('202')
    expect(response['cache-control']).to eq('no-store')
    expect(server.wait_exit&.exitstatus).to eq(0)
    expect(server.log).to include('quit requested')
  end

  describe 'admin listener' do
    it 'serves only the admin endpoints, on its own port' do
      admin_port = free_port
      server = admin_server('--admin-listener-port', admin_port.to_s)
      response = request(admin_port, 'GET', '/-/metrics', token: TOKEN)
      expect(response.code).to eq('200')
      expect(response.body).to include('hyperion_requests_total')
      # Everything else there is the engine's 404; the admin paths still need the token.
      expect(request(admin_port, 'GET', '/', token: TOKEN).body).to eq("Not Found\n")
      expect(request(admin_port, 'GET', '/-/metrics').body).to eq("Not Found\n")
      # The application listener leaves /-/ paths to the app, token or not.
      expect(request(server.port, 'GET', '/-/metrics', token: TOKEN).body).to eq('app 404 GET /-/metrics')
      expect(server.log).to include("admin endpoints /-/metrics and /-/quit on http://127.0.0.1:#{admin_port}")

      expect(request(admin_port, 'POST', '/-/quit', token: TOKEN).code).to eq('202')
      expect(server.wait_exit&.exitstatus).to eq(0)
    end

    it 'needs a token' do
      status, log = boot_failure('--admin-listener-port', free_port.to_s)
      expect(status).to eq(64)
      expect(log).to include('admin_listener_port (from cli) needs an admin token')
    end
  end

  describe 'token sources' do
    def token_file(content, mode)
      path = File.join(@tmp, 'admin_token')
      File.write(path, content)
      File.chmod(mode, path)
      path
    end

    it 'reads --admin-token-file, ignoring a trailing newline' do
      path = token_file("#{TOKEN}\n", 0o600)
      server = start_server('--admin-token-file', path, fixture('admin.ru'))
      expect(request(server.port, 'GET', '/-/metrics', token: TOKEN).code).to eq('200')
    end

    it 'refuses a token file others can read' do
      path = token_file(TOKEN, 0o644)
      status, log = boot_failure('--admin-token-file', path)
      expect(status).to eq(64)
      expect(log).to include("admin_token_file #{path} has mode 0644")
      expect(log).to include("chmod 600 #{path}")
    end

    it 'refuses a token file group or others can write' do
      path = token_file(TOKEN, 0o620)
      status, log = boot_failure('--admin-token-file', path)
      expect(status).to eq(64)
      expect(log).to include('has mode 0620')
    end

    it 'refuses a token shorter than 16 characters, without printing it' do
      status, log = boot_failure(env: { 'HYPERION_ADMIN_TOKEN' => 'short-secret' })
      expect(status).to eq(64)
      expect(log).to include('admin_token (HYPERION_ADMIN_TOKEN): must be at least 16 characters')
      expect(log).not_to include('short-secret')
    end

    it 'has no command-line flag carrying the token itself' do
      ['--admin-token', "--admin-token=#{TOKEN}", '--admin-tok'].each do |flag|
        status, log = boot_failure(flag, TOKEN)
        expect(status).to eq(64)
        expect(log).to include('there is no --admin-token flag')
        expect(log).not_to include(TOKEN)
      end
    end

    it 'reads admin_token from the config file' do
      config = File.join(@tmp, 'hyperion.rb')
      File.write(config, "admin_token #{TOKEN.inspect}\n")
      server = start_server('-C', config, fixture('admin.ru'))
      expect(request(server.port, 'GET', '/-/metrics', token: TOKEN).code).to eq('200')
    end
  end

  describe 'in cluster mode', if: RUBY_PLATFORM.include?('linux') do
    # Pids of the master's children that have not exited.
    def children(server)
      Dir.glob('/proc/[0-9]*/stat').filter_map do |path|
        state, ppid = File.read(path).split(') ', 2).last.split
        Integer(File.basename(File.dirname(path))) if Integer(ppid) == server.pid && state != 'Z'
      rescue SystemCallError, ArgumentError, NoMethodError
        nil
      end
    end

    def cluster(*args)
      server = admin_server('-w', '2', *args)
      eventually(timeout: 20) { server.log.scan(/worker \d+ booted/).size >= 2 }
      server
    end

    def expect_all_gone(server, workers)
      expect(server.wait_exit(30)&.exitstatus).to eq(0)
      workers.each { |pid| expect(File.exist?("/proc/#{pid}")).to be(false), "worker #{pid} is still there" }
    end

    it 'stops the master and every worker on POST /-/quit' do
      server = cluster
      workers = children(server)
      expect(workers.size).to eq(2)
      expect(request(server.port, 'POST', '/-/quit', token: TOKEN).code).to eq('202')
      expect_all_gone(server, workers)
      expect(server.log).to include('TERM received: stopping 2 workers')
    end

    it 'shares one admin listener between the workers' do
      admin_port = free_port
      server = cluster('--admin-listener-port', admin_port.to_s)
      workers = children(server)
      response = request(admin_port, 'GET', '/-/metrics', token: TOKEN)
      expect(response.code).to eq('200')
      expect(response.body).to include('hyperion_requests_total')
      expect(server.log).to include("admin endpoints /-/metrics and /-/quit on http://127.0.0.1:#{admin_port}")
      expect(request(admin_port, 'POST', '/-/quit', token: TOKEN).code).to eq('202')
      expect_all_gone(server, workers)
    end
  end
end
