# frozen_string_literal: true

require 'spec_helper'
require 'json'
require 'open3'
require 'tmpdir'
require 'fileutils'
require 'hyperion/version'

RSpec.describe 'bin/hyperion command line' do
  around do |example|
    Dir.mktmpdir('hyperion-e2e-cli') do |dir|
      @dir = dir
      example.run
    end
  end

  after { stop_started_servers_quickly }

  def write(relative, content)
    path = File.join(@dir, relative)
    FileUtils.mkdir_p(File.dirname(path))
    File.write(path, content)
    path
  end

  def refused?(port, host = '127.0.0.1')
    TCPSocket.new(host, port).close
    false
  rescue Errno::ECONNREFUSED, Errno::EADDRNOTAVAIL
    true
  end

  def get_body(port, path = '/')
    response = http_get(port, path)
    expect(response.code).to eq('200')
    response.body
  end

  # Runs a server that is expected to refuse to start; returns [exit status, output].
  def failed_start(*args, **opts)
    server = start_server(*args, wait: false, **opts)
    status = server.wait_exit(20)
    expect(status).not_to be_nil, "server kept running:\n#{server.log}"
    [status, server.log]
  end

  describe 'the built-in welcome app' do
    it 'is served when there is no config.ru in the working directory, and the log says so' do
      server = start_server(chdir: @dir)
      response = http_get(server.port, '/')
      expect(response.code).to eq('200')
      expect(response['content-type']).to start_with('text/html')
      expect(response.body).to include('<html').and include("Hyperion #{Hyperion::VERSION}")
      expect(server.log).to include('serving the built-in welcome app')
    end

    it 'is not served when the working directory has a config.ru' do
      write('config.ru', "run ->(_env) { [200, { 'content-type' => 'text/plain' }, ['from my config.ru']] }\n")
      server = start_server(chdir: @dir)
      expect(get_body(server.port)).to eq('from my config.ru')
      expect(server.log).not_to include('welcome app')
    end
  end

  describe 'port precedence: flag > environment > config file' do
    before do
      @file_port, @env_port, @cli_port = Array.new(3) { free_port }
      FileUtils.cp(fixture('port_env.ru'), File.join(@dir, 'config.ru'))
      write('config/hyperion.rb', "port #{@file_port}\n")
    end

    # `-b 127.0.0.1` keeps the harness from adding its own -p.
    it 'listens on the -p port when all three are given' do
      server = start_server('-b', '127.0.0.1', '-p', @cli_port.to_s, chdir: @dir, port: @cli_port,
                                                                     env: { 'HYPERION_PORT' => @env_port.to_s })
      expect(get_body(server.port)).to start_with("port=#{@cli_port} ")
      expect(refused?(@env_port)).to be(true)
      expect(refused?(@file_port)).to be(true)
    end

    it 'listens on the HYPERION_PORT port without the flag' do
      server = start_server('-b', '127.0.0.1', chdir: @dir, port: @env_port, env: { 'HYPERION_PORT' => @env_port.to_s })
      expect(get_body(server.port)).to start_with("port=#{@env_port} ")
      expect(refused?(@file_port)).to be(true)
    end

    it 'listens on the config file port without flag and environment' do
      server = start_server('-b', '127.0.0.1', chdir: @dir, port: @file_port)
      expect(get_body(server.port)).to start_with("port=#{@file_port} ")
      expect(server.log).to include("listening on http://127.0.0.1:#{@file_port}")
    end
  end

  it 'sets RACK_ENV from -e' do
    server = start_server('-e', 'staging', fixture('port_env.ru'))
    expect(get_body(server.port)).to eq("port=#{server.port} rack_env=staging")
  end

  describe '-t' do
    def parallel_gets(port, count, query)
      Array.new(count) { Thread.new { http_get(port, "/?#{query}").body } }.map(&:value)
    end

    it 'runs as many requests at once as there are threads (-t 3)' do
      server = start_server('-t', '3', fixture('concurrency.ru'))
      expect(parallel_gets(server.port, 3, 'n=3&wait=20')).to eq(%w[together together together])
    end

    it 'never runs two requests at once with -t 1' do
      server = start_server('-t', '1', fixture('concurrency.ru'))
      # The first request waits (up to 1 s) for the second to enter the app: with one thread
      # it cannot, so exactly one answer is "alone".
      expect(parallel_gets(server.port, 2, 'n=2&wait=1').sort).to eq(%w[alone together])
    end
  end

  describe '--cpu-scheduling', if: RUBY_PLATFORM.include?('linux') do
    let(:sched_other) { 0 }
    let(:sched_batch) { 3 }

    # The policy is field 41 of a task's stat; the name (field 2) is in parentheses and may
    # hold spaces.
    def policy(stat_path)
      File.read(stat_path).split(') ', 2).last.split[38].to_i
    end

    # Policy of each of the server's own threads (I/O, application, log writer), from /proc.
    def server_thread_policies(pid)
      Dir.glob("/proc/#{pid}/task/*").filter_map do |task|
        name = File.read("#{task}/comm").strip
        next unless name.start_with?('hyperion-io', 'hyperion-app', 'hyperion-log')

        [name, policy("#{task}/stat")]
      end.to_h
    end

    # Starts a server with `args`, answers one request and waits for its access line: the log
    # writer starts with the first line, written after the response.
    def server_after_a_request(*args)
      server = start_server(*args, fixture('e2e_app.ru'))
      expect(get_body(server.port, '/hello')).to eq('hello world')
      eventually { server.log.include?('/hello') }
      server
    end

    it 'runs the application and log threads under SCHED_BATCH by default, the I/O thread under the normal policy' do
      server = server_after_a_request('-t', '2')
      expect(server_thread_policies(server.pid))
        .to eq('hyperion-io' => sched_other, 'hyperion-app-0' => sched_batch, 'hyperion-app-1' => sched_batch,
               'hyperion-log' => sched_batch)
      expect(server.log).to include('scheduling: batch')
    end

    it 'serves on the main thread under SCHED_BATCH with -t 0' do
      server = server_after_a_request('-t', '0')
      expect(policy("/proc/#{server.pid}/stat")).to eq(sched_batch)
      expect(server_thread_policies(server.pid).slice('hyperion-io')).to eq('hyperion-io' => sched_other)
    end

    it 'keeps the normal policy with normal' do
      server = server_after_a_request('-t', '2', '--cpu-scheduling', 'normal')
      expect(server_thread_policies(server.pid))
        .to eq('hyperion-io' => sched_other, 'hyperion-app-0' => sched_other, 'hyperion-app-1' => sched_other,
               'hyperion-log' => sched_other)
      expect(server.log).to include('scheduling: normal')
    end

    it 'runs cluster workers under SCHED_BATCH' do
      server = start_server('-w', '2', '-t', '1', fixture('e2e_app.ru'))
      expect(get_body(server.port, '/hello')).to eq('hello world')
      expect(server.log).to match(/worker \d booted .*scheduling: batch/)
    end

    it 'refuses an unknown policy' do
      server = start_server('--cpu-scheduling', 'fifo', fixture('e2e_app.ru'), wait: false)
      expect(server.wait_exit&.exitstatus).to eq(64)
      expect(server.log).to include('invalid value "fifo" for cpu_scheduling')
    end
  end

  describe '--io-uring' do
    # The child inherits no loop choice from a suite run with HYPERION_SPEC_IO_URING.
    let(:no_spec_loop) { { 'HYPERION_IO_URING' => nil } }

    it 'logs the io_uring loop with on, and serves with it' do
      skip 'this kernel does not allow io_uring' unless IoUringProbe.available?

      server = start_server('--io-uring', 'on', fixture('e2e_app.ru'), env: no_spec_loop)
      expect(get_body(server.port, '/hello')).to eq('hello world')
      expect(server.log).to match(/connection loop: io_uring \(.+\)/)
    end

    it 'logs which loop auto picked and why' do
      server = start_server('--io-uring', 'auto', fixture('e2e_app.ru'), env: no_spec_loop)
      expect(get_body(server.port, '/hello')).to eq('hello world')
      expected = IoUringProbe.available? ? 'io_uring' : 'epoll'
      expect(server.log).to match(/connection loop: #{expected} \(.+\)/)
    end

    it 'refuses to start with on when io_uring cannot be used' do
      skip 'io_uring works on this kernel' if IoUringProbe.available?

      server = start_server('--io-uring', 'on', fixture('e2e_app.ru'), env: no_spec_loop, wait: false)
      expect(server.wait_exit&.exitstatus).to eq(1)
      expect(server.log).to include('io_uring cannot be used')
    end

    it 'logs the epoll loop by default' do
      server = start_server(fixture('e2e_app.ru'), env: no_spec_loop)
      expect(get_body(server.port, '/hello')).to eq('hello world')
      expect(server.log).to include('connection loop: epoll (io_uring is off)')
    end
  end

  it '--idle-keepalive 1 makes the server close an idle keep-alive connection' do
    server = start_server('--idle-keepalive', '1', fixture('e2e_app.ru'))
    sock = TCPSocket.new('127.0.0.1', server.port)
    sock.write("GET /hello HTTP/1.1\r\nHost: a\r\n\r\n")
    expect(read_response(sock)[2]).to eq('hello world')
    data, closed = read_to_eof(sock, timeout: 10)
    expect(closed).to be(true)
    expect(data).to eq('')
  ensure
    sock&.close
  end

  describe '-b' do
    it 'serves over a Unix socket with unix:///path' do
      path = File.join(@dir, 'h.sock')
      server = start_server('-b', "unix://#{path}", fixture('e2e_app.ru'), wait: false)
      sock = eventually(timeout: 20) do
        raise "server exited:\n#{server.log}" unless server.alive?

        begin
          UNIXSocket.new(path)
        rescue Errno::ENOENT, Errno::ECONNREFUSED
          nil
        end
      end
      sock.write("GET /hello HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
      data, closed = read_to_eof(sock)
      sock.close
      expect(closed).to be(true)
      status, _headers, body = parse_responses(data).first
      expect([status, body]).to eq([200, 'hello world'])
      expect(server.log).to include(path)
    end

    it 'serves on the port of tcp://host:port' do
      port = free_port
      server = start_server('-b', "tcp://127.0.0.1:#{port}", fixture('e2e_app.ru'), port: port)
      expect(get_body(server.port, '/hello')).to eq('hello world')
    end

    it 'serves over IPv6 with -b ::1' do
      begin
        TCPServer.new('::1', 0).close
      rescue SystemCallError
        skip 'no IPv6 loopback on this machine'
      end
      port = free_port
      server = start_server('-b', '::1', '-p', port.to_s, fixture('echo.ru'), port: port, wait: false)
      sock = eventually(timeout: 20) do
        raise "server exited:\n#{server.log}" unless server.alive?

        begin
          TCPSocket.new('::1', port)
        rescue Errno::ECONNREFUSED
          nil
        end
      end
      sock.write("GET /v6 HTTP/1.1\r\nHost: [::1]:#{port}\r\nConnection: close\r\n\r\n")
      data, = read_to_eof(sock)
      sock.close
      status, _headers, body = parse_responses(data).first
      expect(status).to eq(200)
      env = JSON.parse(body)
      expect(env).to include('PATH_INFO' => '/v6', 'REMOTE_ADDR' => '::1', 'SERVER_NAME' => '[::1]',
                             'SERVER_PORT' => port.to_s)
    end
  end

  describe 'refusing to start' do
    it 'exits non-zero naming the file and line of an unknown config setting' do
      write('config/hyperion.rb', "threads 2\nprot 3000\n")
      write('config.ru', "run ->(_env) { [200, {}, ['x']] }\n")
      status, log = failed_start(chdir: @dir)
      expect(status.exitstatus).not_to eq(0)
      expect(log).to match(/unknown setting `prot'/)
      expect(log).to match(%r{config/hyperion\.rb:2\b})
    end

    it 'exits non-zero with a clear message for a missing rackup file' do
      status, log = failed_start('does-not-exist.ru', chdir: @dir)
      expect(status.exitstatus).not_to eq(0)
      expect(log).to include('rackup file not found: does-not-exist.ru')
    end

    it 'exits 1 with a clear message when the port is already in use' do
      blocker = TCPServer.new('127.0.0.1', 0)
      port = blocker.addr[1]
      status, log = failed_start('-p', port.to_s, fixture('e2e_app.ru'))
      expect(status.exitstatus).to eq(1)
      expect(log).to include(port.to_s)
      expect(log).to match(/in use/i)
    ensure
      blocker&.close
    end
  end

  it '--version prints the version and exits 0' do
    out, status = Open3.capture2e(RbConfig.ruby, ServerHelpers::BIN, '--version')
    expect(status.exitstatus).to eq(0)
    expect(out).to eq("hyperion-rb #{Hyperion::VERSION}\n")
  end
end
