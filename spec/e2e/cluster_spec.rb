# frozen_string_literal: true

require 'spec_helper'
require 'open3'
require 'set'
require 'tmpdir'
require_relative '../support/io_uring_probe'

# Cluster mode end to end: a real master, real workers, real signals and sockets. Process
# facts (parent, state) are read from /proc, so this runs on Linux.
RSpec.describe 'Cluster mode (-w N)', if: RUBY_PLATFORM.include?('linux') do
  around do |example|
    Dir.mktmpdir('hyperion-e2e-cluster') do |dir|
      @tmp = dir
      example.run
    end
  end

  after do
    stop_started_servers_quickly
    kill_started_process_groups
  end

  def events_path
    File.join(@tmp, 'events')
  end

  def events
    File.exist?(events_path) ? File.read(events_path).lines.map(&:split) : []
  end

  # Starts `hyperion -w WORKERS ARGS cluster.ru` and waits until that many workers have booted.
  def cluster(*args, workers: 2, env: {}, wait: true)
    server = start_server('-w', workers.to_s, *args, fixture('cluster.ru'), env: { 'CLUSTER_EVENTS' => events_path }.merge(env))
    eventually(timeout: 20) { live_workers(server).size == workers && booted(server).size >= workers } if wait
    server
  end

  # [[index, pid], ...] from the "worker N booted (pid P)" log lines, oldest first.
  def booted(server)
    server.log.scan(/worker (\d+) booted \(pid (\d+)\)/).map { |index, pid| [Integer(index), Integer(pid)] }
  end

  # Pids of the master's children that have not exited.
  def live_workers(server)
    Dir.glob('/proc/[0-9]*/stat').filter_map do |path|
      stat = File.read(path)
      _, rest = stat.split(') ', 2).then { |head, tail| [head, tail.split] }
      state, ppid = rest
      Integer(File.basename(File.dirname(path))) if Integer(ppid) == server.pid && state != 'Z'
    rescue SystemCallError, ArgumentError, NoMethodError
      nil
    end.sort
  end

  def gone?(pid)
    state = File.read("/proc/#{pid}/stat").split(') ', 2).last.split.first
    state == 'Z'
  rescue Errno::ENOENT, Errno::ESRCH
    true
  end

  # GET / on a new connection; returns the serving worker's pid.
  def served_by(port)
    data = raw_request(port, "GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n", until_pattern: /multiprocess=\w+/)
    status, _headers, body = parse_responses(data).first
    raise "unexpected answer: #{data.inspect}" unless status == 200

    Integer(body[/pid=(\d+)/, 1])
  end

  def pids_serving(port, at_least:)
    pids = Set.new
    eventually(timeout: 20, interval: 0) { (pids << served_by(port)).size >= at_least }
    pids
  end

  def expect_clean_exit(server, within: 20)
    status = server.wait_exit(within)
    expect(status).not_to be_nil, "master did not exit within #{within}s; log:\n#{server.log}"
    expect(status.exitstatus).to eq(0), "exit status #{status.inspect}; log:\n#{server.log}"
  end

  # A client sending requests in a loop (keep-alive, reconnecting whenever the server says
  # `connection: close`) until the `stop` Queue is closed. Its value is [requests, failures, pids].
  def keep_requesting(port, stop)
    Thread.new do
      count = 0
      failures = []
      pids = Set.new
      sock = nil
      until stop.closed?
        begin
          sock ||= TCPSocket.new('127.0.0.1', port)
          sock.write("GET / HTTP/1.1\r\nHost: a\r\n\r\n")
          status, headers, body = read_response(sock)
          count += 1
          status == 200 ? pids << Integer(body[/pid=(\d+)/, 1]) : failures << "status #{status}"
          if headers['connection'] == 'close'
            sock.close
            sock = nil
          end
        rescue StandardError => e
          failures << "#{e.class}: #{e.message}"
          sock&.close
          sock = nil
        end
      end
      sock&.close
      [count, failures, pids]
    end
  end

  %w[reuseport share].each do |model|
    context "with worker_model #{model}" do
      it 'serves from two worker processes, children of a master that exported HYPERION_MASTER_PID' do
        server = cluster('--worker-model', model)
        workers = live_workers(server)
        expect(workers.size).to eq(2)
        pids = pids_serving(server.port, at_least: 2)
        expect(pids).to eq(workers.to_set)

        body = raw_request(server.port, "GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n", until_pattern: /multiprocess=\w+/)
        expect(body).to include("master=#{server.pid}").and include('multiprocess=true')
        expect(server.log).to include("cluster: 2 workers (#{model})")
      end

      it 'runs before_fork once in the master, then each worker its boot hooks before serving, ' \
         'and on_worker_shutdown when stopped (QUIT); a raising hook is logged and the worker goes on' do
        config = File.join(@tmp, 'hooks.rb')
        File.write(config, <<~RUBY)
          record = ->(line) { File.write(#{events_path.inspect}, "\#{line}\\n", mode: 'a') }
          before_fork { record.call("before_fork \#{Process.pid}") }
          on_worker_boot { |index| record.call("boot \#{index} \#{Process.pid}") }
          on_worker_boot { |index| raise "boot hook failed in worker \#{index}" }
          on_worker_shutdown { |index| record.call("shutdown \#{index} \#{Process.pid}") }
        RUBY
        server = cluster('--worker-model', model, '-C', config)
        pids_serving(server.port, at_least: 2)
        server.signal('QUIT')
        expect_clean_exit(server)

        lines = events.reject { |kind, _| kind == 'load' }
        master = server.pid
        expect(lines.first).to eq(['before_fork', master.to_s])
        expect(lines.count { |kind, _| kind == 'before_fork' }).to eq(1)
        boots = lines.select { |kind, _| kind == 'boot' }
        expect(boots.map { |_, index, _| Integer(index) }.sort).to eq([0, 1])
        boots.each do |_, index, pid|
          expect(pid).not_to eq(master.to_s)
          # Boot hooks, then the first request, then the shutdown hook, in that process.
          mine = lines.select { |_, *rest| rest.last == pid }.map(&:first)
          expect(mine).to eq(%w[boot request shutdown])
          expect(lines).to include(['shutdown', index, pid])
        end
        expect(server.log).to match(/on_worker_boot hook defined at #{Regexp.escape(config)}:4 raised/)
        expect(server.log).to include('boot hook failed in worker 0').and include('boot hook failed in worker 1')
      end
    end
  end

  it 'loads the app once, in the master, with preload_app (the default)' do
    server = cluster
    pids_serving(server.port, at_least: 2)
    expect(events.select { |kind, _| kind == 'load' }).to eq([['load', server.pid.to_s]])
    expect(server.log).to include('preload_app: true')
  end

  it 'serves routes registered in the master before fork from every worker' do
    server = cluster
    pids_serving(server.port, at_least: 2)
    bodies = Array.new(20) { raw_request(server.port, "GET /static HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n") }
    expect(bodies).to all(include("static from #{server.pid}"))
  end

  it 'loads the app in each worker after fork with --no-preload-app' do
    server = cluster('--no-preload-app')
    workers = live_workers(server)
    pids_serving(server.port, at_least: 2)
    loads = events.select { |kind, _| kind == 'load' }.map { |_, pid| Integer(pid) }
    expect(loads.sort).to eq(workers)
    expect(loads).not_to include(server.pid)
  end

  it 'replaces a killed worker, keeping its index' do
    server = cluster
    victim_index, victim = booted(server).first
    Process.kill('KILL', victim)
    eventually(timeout: 20) { booted(server).size == 3 }
    expect(booted(server).last.first).to eq(victim_index)
    expect(server.log).to include("worker #{victim_index} (pid #{victim}) died (killed by KILL); replacing it")
    eventually { live_workers(server).size == 2 && !live_workers(server).include?(victim) }
    expect(pids_serving(server.port, at_least: 2)).not_to include(victim)
  end

  it 'adds a worker on TTIN and removes one on TTOU, never the last' do
    server = cluster
    server.signal('TTIN')
    eventually(timeout: 20) { live_workers(server).size == 3 && booted(server).size == 3 }
    expect(booted(server).last.first).to eq(2)
    expect(pids_serving(server.port, at_least: 3).size).to eq(3)

    3.times do |i|
      server.signal('TTOU')
      eventually(timeout: 20) { server.log.scan(/TTOU received/).size == i + 1 }
    end
    eventually(timeout: 20) { live_workers(server).size == 1 }
    expect(server.log).to include('TTOU received: 1 worker').and include('already down to 1 worker')
    expect(served_by(server.port)).to eq(live_workers(server).first)
  end

  it 'stops every worker on TERM and exits 0, removing its Unix socket' do
    path = File.join(@tmp, 'cluster.sock')
    server = start_server('-w', '2', '-b', "unix://#{path}", fixture('cluster.ru'), wait: false, port: nil)
    eventually(timeout: 20) { booted(server).size == 2 }
    workers = live_workers(server)
    sock = UNIXSocket.new(path)
    sock.write("GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
    expect(read_to_eof(sock).first).to include('multiprocess=true')
    sock.close
    expect(server.log).to include('cluster: 2 workers (share)')

    server.signal('TERM')
    expect_clean_exit(server)
    expect(workers).to all(satisfy { |pid| gone?(pid) })
    expect(File.exist?(path)).to be(false)
    expect(server.log).to include('TERM received: stopping 2 workers').and include('stopped')
  end

  it 'restarts every worker on USR1, one at a time, while a client keeps getting answers' do
    server = cluster
    old = live_workers(server)
    stop = Queue.new
    client = keep_requesting(server.port, stop)

    server.signal('USR1')
    eventually(timeout: 30) { booted(server).size == 4 && (live_workers(server) & old).empty? }
    new_pids = live_workers(server)
    eventually(timeout: 20) { (pids_serving(server.port, at_least: 1) & new_pids.to_set).any? }
    stop.close
    count, failures, = client.value
    expect(failures).to eq([]), server.log
    expect(count).to be > 0
    expect(booted(server).last(2).map(&:first).sort).to eq([0, 1])
    expect(new_pids.size).to eq(2)
  end

  it 'recycles a worker over --worker-max-rss-mb' do
    server = cluster('--worker-max-rss-mb', '1', '--worker-check-interval', '0.2')
    first = booted(server).map(&:last)
    eventually(timeout: 30) { booted(server).size >= 4 && first.all? { |pid| gone?(pid) } }
    expect(server.log).to match(/worker \d \(pid \d+\) uses [\d.]+ MiB, over worker_max_rss_mb 1: replacing it/)
    expect(served_by(server.port)).not_to be_nil
  end

  it 'exits the workers when the master is killed' do
    server = cluster
    workers = live_workers(server)
    server.signal('KILL')
    server.wait_exit(10)
    eventually(timeout: 20) { workers.all? { |pid| gone?(pid) } }
  end

  it 'warns that hooks do not run in single mode (-w 1)' do
    config = File.join(@tmp, 'hooks.rb')
    File.write(config, "on_worker_boot { raise 'never run' }\nbefore_fork { raise 'never run' }\n")
    server = start_server('-w', '1', '-C', config, fixture('cluster.ru'))
    expect(served_by(server.port)).to eq(server.pid)
    expect(server.log).to include('on_worker_boot, before_fork hooks run in cluster mode only')
    expect(server.log).not_to include('never run')
  end

  it 'logs HUP and USR2 and keeps its workers' do
    server = cluster
    workers = live_workers(server)
    server.signal('HUP')
    server.signal('USR2')
    eventually { server.log.include?('USR2 received') && server.log.include?('HUP received') }
    expect(server.log).to include('USR2 received: TLS is not configured; nothing done')
    expect(live_workers(server)).to eq(workers)
  end

  it 'backs off when the app cannot boot, and kills a worker that does not boot in time' do
    server = cluster('--no-preload-app', workers: 2, env: { 'CLUSTER_BOOT_FAIL' => '1' }, wait: false)
    eventually(timeout: 20) { server.log.include?('replacing it in 1.0s') }
    expect(server.log).to include('died while booting (exit 1); replacing it in 0.5s')
    expect(server.log).to include('this app cannot boot')

    config = File.join(@tmp, 'slow_boot.rb')
    File.write(config, "on_worker_boot { sleep 60 }\n")
    slow = cluster('--worker-boot-timeout', '0.5', '-C', config, wait: false)
    eventually(timeout: 20) { slow.log.include?('did not boot within 0.5s; killing it') }
    eventually(timeout: 20) { slow.log.include?('died while booting (killed by KILL)') }
  end

  it 'refuses to start when the port is taken, in either worker model' do
    blocker = TCPServer.new('127.0.0.1', 0)
    port = blocker.addr[1]
    %w[reuseport share].each do |model|
      server = start_server('-w', '2', '--worker-model', model, '-p', port.to_s, fixture('cluster.ru'), wait: false)
      status = server.wait_exit(20)
      expect(status&.exitstatus).to eq(1), server.log
      expect(server.log).to match(/cannot listen on 127\.0\.0\.1:#{port}: .*in use/i)
    end
  ensure
    blocker&.close
  end

  describe 'under load (wrk)', if: system('command -v wrk >/dev/null 2>&1') do
    # Runs wrk for `seconds` while the block sends its signals; returns wrk's report.
    def wrk_through(port, seconds: 5)
      report = Thread.new do
        out, = Open3.capture2e('wrk', '-t2', '-c16', "-d#{seconds}s", "http://127.0.0.1:#{port}/")
        out
      end
      sleep 1.5
      yield
      report.value
    end

    def expect_no_errors(report, server)
      expect(report).to match(/\d+ requests in/), report
      expect(report).not_to include('Socket errors'), "#{report}\n#{server.log}"
      expect(report).not_to include('Non-2xx'), "#{report}\n#{server.log}"
    end

    loops = [['epoll', []]]
    loops << ['io_uring', %w[--io-uring on]] if IoUringProbe.available?
    loops.each do |name, loop_args|
      context "with the #{name} loop" do
        it 'boots every worker on that loop' do
          server = cluster(*loop_args)
          expect(server.log.scan(/connection loop: #{name}/).size).to be >= 2, server.log
        end

        it 'loses no request through a USR1 rolling restart' do
          server = cluster(*loop_args)
          old = live_workers(server)
          report = wrk_through(server.port) do
            server.signal('USR1')
            eventually(timeout: 20) { (live_workers(server) & old).empty? && booted(server).size == 4 }
          end
          expect_no_errors(report, server)
        end

        it 'loses no request when one worker is sent TERM' do
          server = cluster(*loop_args)
          index, victim = booted(server).first
          report = wrk_through(server.port) do
            Process.kill('TERM', victim)
            eventually(timeout: 20) { gone?(victim) && booted(server).size == 3 }
          end
          expect_no_errors(report, server)
          expect(booted(server).last.first).to eq(index)
        end

        it 'loses no request through a USR1 rolling restart with worker_model share' do
          server = cluster('--worker-model', 'share', *loop_args)
          old = live_workers(server)
          report = wrk_through(server.port) do
            server.signal('USR1')
            eventually(timeout: 20) { (live_workers(server) & old).empty? && booted(server).size == 4 }
          end
          expect_no_errors(report, server)
        end
      end
    end
  end
end
