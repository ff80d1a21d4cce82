# frozen_string_literal: true

require 'etc'
require 'hyperion/binder'
require 'hyperion/hooks'
require 'hyperion/worker'

module Hyperion
  # Cluster mode: the master process. It binds the listening sockets, loads the app (unless
  # preload_app is false), forks the workers and supervises them in one small loop: wait on
  # a self-pipe and the workers' status pipes, handle the queued signals, reap the dead,
  # then bring the workers back to what they should be (see #maintain). The master never
  # starts an engine and owns no thread, so forking is always safe.
  class Cluster
    SIGNALS = %w[TERM INT QUIT USR1 USR2 TTIN TTOU HUP CHLD].freeze
    STOP_SIGNALS = %w[TERM INT QUIT].freeze
    # A worker that dies while booting is replaced after a delay that doubles with each
    # failure in a row, so an app that cannot boot does not make the master fork in a loop.
    FIRST_BACKOFF = 0.5
    MAX_BACKOFF = 30
    # A stopping worker's engine gives up on requests at graceful_timeout; this much more is
    # left for on_worker_shutdown before the master kills the worker.
    SHUTDOWN_MARGIN = 5
    # The master wakes at least this often even when nothing is due: a cheap guard against a
    # missed wake-up.
    MAX_SLEEP = 1
    # Delay before trying again when fork itself fails (out of processes or memory).
    FORK_RETRY = 1

    # The master's view of one worker process.
    class WorkerHandle
      attr_reader :index, :pid, :status, :spawned_at
      # :booting until the worker reports it serves, then :running; :stopping once asked to
      # stop (or once it reports it was).
      attr_accessor :state, :stop_deadline, :killed

      def initialize(index:, pid:, status:, spawned_at:)
        @index = index
        @pid = pid
        @status = status
        @buffer = +''
        @spawned_at = spawned_at
        @state = :booting
        @stop_deadline = nil
        @killed = false
      end

      %i[booting running stopping].each do |state|
        define_method(:"#{state}?") { @state == state }
      end

      # Lines the worker wrote since the last call; nil once it has closed its end.
      def read_reports
        chunk = @status.read_nonblock(4096, exception: false)
        return [] if chunk == :wait_readable
        return nil if chunk.nil?

        @buffer << chunk
        lines = @buffer.split("\n", -1)
        @buffer = lines.pop
        lines
      end

      def close
        @status.close unless @status.closed?
      end

      def to_s
        "worker #{@index} (pid #{@pid})"
      end
    end

    # A rolling restart's step: `fresh` boots for `old`'s slot, then `old` is stopped.
    Replacement = Struct.new(:old, :fresh)

    def initialize(config, logger:, launcher:)
      @config = config
      @logger = logger
      @launcher = launcher
      @hooks = Hooks.new(config.hooks, logger)
      @workers = []
      @signals = []
      @restart_queue = []
      @replacement = nil
      @boot_failures = Hash.new(0)
      @respawn_at = {}
      @stopping = false
      @killing = false
    end

    # Returns the process exit status.
    def run
      @count = @config.workers.zero? ? Etc.nprocessors : @config.workers
      ENV['HYPERION_MASTER_PID'] = Process.pid.to_s
      # Without preloading, each worker loads the app; a missing rackup still fails here, once.
      @launcher.check_app
      @app = @launcher.load_app if @config.preload_app
      @binder = Binder.new(@config.listener, model: @config.worker_model)
      # One admin socket for all workers: a scrape lands on whichever worker accepts it.
      @admin_binder = @config.admin_listener && Binder.new(@config.admin_listener, model: :share)
      begin
        @count.times { |index| @binder.socket_for(index) }
        @admin_socket = @admin_binder&.socket_for(0)
      rescue BindError => e
        @logger.fatal(e.message)
        return 1
      end
      log_boot
      # One metrics slot per worker index, mapped before any fork so every worker shares it;
      # room for TTIN to add workers (past it, indexes share slots).
      Hyperion.setup_cluster_metrics([@count * 2, 16].max)
      # Before any fork: every worker gets the same ticket secret and shares the generation.
      @tls_tickets = TLS::Tickets.new if @config.tls?
      install_traps
      @hooks.run(:before_fork)
      @lifeline, @lifeline_writer = IO.pipe
      @next_rss_check = now + @config.worker_check_interval
      supervise
      @logger.info('stopped')
      @killing ? 1 : 0
    ensure
      @binder&.close
      @admin_binder&.close
    end

    private

    def now
      Process.clock_gettime(Process::CLOCK_MONOTONIC)
    end

    # The master loop, until every worker has stopped.
    def supervise
      loop do
        handle_signals
        reap
        maintain
        break if @stopping && @workers.empty?

        sleep_until_event
      end
    end

    def install_traps
      @wake_reader, @wake_writer = IO.pipe
      SIGNALS.each do |signal|
        Signal.trap(signal) do
          @signals << signal
          begin
            @wake_writer.write_nonblock('.', exception: false)
          rescue IOError
            nil # a new worker that has closed the master's pipe but not yet trapped this signal
          end
        end
      end
    end

    def sleep_until_event
      ready, = IO.select([@wake_reader, *@workers.map(&:status).reject(&:closed?)], nil, nil, next_timeout)
      Array(ready).each do |io|
        if io == @wake_reader
          io.read_nonblock(1024, exception: false)
        else
          read_reports(@workers.find { |worker| worker.status == io })
        end
      end
    end

    def next_timeout
      deadlines = []
      unless @stopping
        deadlines.concat(@respawn_at.values)
        deadlines << @next_rss_check if @config.worker_max_rss_mb
      end
      @workers.each do |worker|
        next if worker.killed

        deadlines << worker.spawned_at + @config.worker_boot_timeout if worker.booting?
        deadlines << worker.stop_deadline if worker.stop_deadline
      end
      wait = deadlines.empty? ? MAX_SLEEP : deadlines.min - now
      wait.clamp(0, MAX_SLEEP)
    end

    def read_reports(worker)
      return unless worker

      lines = worker.read_reports
      return worker.close if lines.nil?

      lines.each do |line|
        case line
        when 'booted'
          worker.state = :running unless worker.stopping?
          @boot_failures.delete(worker.index)
        when 'stopping'
          # Stopped by someone else (a TERM sent to the worker itself): its slot is
          # refilled now rather than once it has finished draining.
          mark_stopping(worker) unless worker.stopping?
        end
      end
    end

    # -- signals ------------------------------------------------------------------------------

    def handle_signals
      while (signal = @signals.shift)
        case signal
        when *STOP_SIGNALS then stop_all(signal)
        when 'USR1' then rolling_restart
        when 'TTIN' then add_worker
        when 'TTOU' then remove_worker
        when 'HUP' then reopen_logs
        when 'USR2' then rotate_tls
        end
      end
    end

    # HUP: the master reopens log_file, then relays HUP to every worker, which does the same.
    def reopen_logs
      unless @config.log_file
        @logger.info('HUP received: no log_file is set (logs go to stdout and stderr); nothing to reopen')
        return
      end

      LogFile.reopen(@config.log_file)
      @logger.info("HUP received: reopened #{@config.log_file}; relaying to #{n_workers(@workers.size)}")
      @workers.each do |worker|
        Process.kill('HUP', worker.pid)
      rescue Errno::ESRCH
        nil
      end
    rescue SystemCallError, IOError => e
      @logger.error("HUP received: cannot reopen #{@config.log_file}: #{e.message}")
    end

    # The first stop signal stops every worker gracefully; a second one kills them.
    def stop_all(signal)
      if @stopping
        return if @killing

        @logger.warn("#{signal} again: killing the workers")
        @killing = true
        @workers.each { |worker| kill(worker) }
        return
      end
      @logger.info("#{signal} received: stopping #{n_workers(@workers.size)} (up to #{@config.graceful_timeout}s)")
      @stopping = true
      @restart_queue.clear
      @replacement = nil
      @respawn_at.clear
      @workers.each { |worker| stop_worker(worker) unless worker.stopping? }
    end

    def rolling_restart
      return if @stopping

      @logger.info("USR1 received: restarting #{n_workers(@count)} one at a time")
      @restart_queue = (0...@count).to_a
    end

    # A new session-ticket key for the whole cluster (the generation is shared memory, so every
    # worker, and one forked from now on, uses it at once), then every worker reloads the
    # certificate files.
    def rotate_tls
      unless @tls_tickets
        @logger.info('USR2 received: TLS is not configured; nothing done')
        return
      end
      generation = @tls_tickets.rotate
      @logger.info("USR2 received: session-ticket key generation #{generation}; " \
                   "#{n_workers(@workers.size)} reloading the certificate")
      @workers.each do |worker|
        Process.kill('USR2', worker.pid)
      rescue Errno::ESRCH
        nil
      end
    end

    def add_worker
      return if @stopping

      @binder.socket_for(@count)
      @count += 1
      @logger.info("TTIN received: #{n_workers(@count)}")
    rescue BindError => e
      @logger.error("TTIN received but no socket for another worker: #{e.message}")
    end

    def remove_worker
      return if @stopping

      if @count == 1
        @logger.info('TTOU received: already down to 1 worker')
        return
      end
      @count -= 1
      @logger.info("TTOU received: #{n_workers(@count)}")
      # The socket is released first, so the worker's own copy is the last one: it accepts
      # what is queued there before closing it.
      @binder.release(@count)
      @respawn_at.delete(@count)
      @restart_queue.delete(@count)
      @replacement = nil if @replacement&.old&.index == @count
      @workers.each { |worker| stop_worker(worker) if worker.index == @count && !worker.stopping? }
    end

    # -- workers ------------------------------------------------------------------------------

    def reap
      loop do
        pid, status = Process.wait2(-1, Process::WNOHANG)
        break unless pid

        worker = @workers.find { |w| w.pid == pid }
        next unless worker

        @workers.delete(worker)
        read_reports(worker) unless worker.status.closed?
        worker.close
        exited(worker, status)
      end
    rescue Errno::ECHILD
      nil
    end

    def exited(worker, status)
      how = status.signaled? ? "killed by #{Signal.signame(status.termsig)}" : "exit #{status.exitstatus}"
      if worker.stopping?
        @logger.info("#{worker} stopped (#{how})")
      elsif worker.booting?
        failures = @boot_failures[worker.index] += 1
        delay = [FIRST_BACKOFF * (2**(failures - 1)), MAX_BACKOFF].min
        @logger.error("#{worker} died while booting (#{how}); replacing it in #{delay}s")
        @respawn_at[worker.index] = now + delay
      else
        @logger.warn("#{worker} died (#{how}); replacing it")
      end
    end

    # Brings the workers back to what they should be: every slot filled, rolling restarts
    # advanced, deadlines enforced, memory checked.
    def maintain
      enforce_deadlines
      return if @stopping

      check_memory
      advance_restart
      @count.times do |index|
        if @workers.any? { |worker| worker.index == index && !worker.stopping? }
          @respawn_at.delete(index)
        elsif @respawn_at.fetch(index, 0) <= now
          @respawn_at.delete(index)
          spawn_worker(index)
        end
      end
    end

    def enforce_deadlines
      @workers.each do |worker|
        next if worker.killed

        if worker.booting? && now > worker.spawned_at + @config.worker_boot_timeout
          @logger.error("#{worker} did not boot within #{@config.worker_boot_timeout}s; killing it")
          kill(worker)
        elsif worker.stop_deadline && now > worker.stop_deadline
          @logger.warn("#{worker} still running #{SHUTDOWN_MARGIN}s past graceful_timeout; killing it")
          kill(worker)
        end
      end
    end

    # One slot at a time: start the replacement, wait until it serves, then stop the old one.
    def advance_restart
      if (step = @replacement)
        if !@workers.include?(step.fresh)
          @logger.error("the replacement for #{step.old} did not boot; restart abandoned, the old workers keep serving")
          @restart_queue.clear
          @replacement = nil
        elsif step.fresh.running?
          stop_worker(step.old) if @workers.include?(step.old) && !step.old.stopping?
          @replacement = nil
        end
        return if @replacement
      end
      while (index = @restart_queue.shift)
        old = @workers.find { |worker| worker.index == index && worker.running? }
        next unless old

        fresh = spawn_worker(index)
        fresh ? @replacement = Replacement.new(old, fresh) : @restart_queue.unshift(index)
        break
      end
    end

    def check_memory
      limit = @config.worker_max_rss_mb
      return unless limit && now >= @next_rss_check

      @next_rss_check = now + @config.worker_check_interval
      @workers.each do |worker|
        next unless worker.running?
        next if @replacement&.old == worker || @restart_queue.include?(worker.index)

        rss = rss_mb(worker.pid)
        next unless rss && rss > limit

        @logger.warn("#{worker} uses #{rss.round(1)} MiB, over worker_max_rss_mb #{limit}: replacing it")
        @restart_queue << worker.index
      end
    end

    # Resident memory in MiB, or nil if it cannot be read.
    def rss_mb(pid)
      kib =
        if File.readable?("/proc/#{pid}/status")
          File.read("/proc/#{pid}/status")[/^VmRSS:\s+(\d+)\s+kB/, 1]
        else
          `ps -o rss= -p #{Integer(pid)}`.strip
        end
      kib && !kib.empty? ? Integer(kib, 10) / 1024.0 : nil
    rescue SystemCallError, ArgumentError
      nil
    end

    def spawn_worker(index)
      socket = @binder.socket_for(index)
      status_reader, status_writer = IO.pipe
      pid = fork do
        worker = Worker.new(index: index, config: @config, logger: @logger, socket: socket, status: status_writer,
                            lifeline: @lifeline, app: @app, launcher: @launcher, early_signals: @signals,
                            admin_socket: @admin_socket, tls_tickets: @tls_tickets)
        status = worker.run do
          status_reader.close
          close_master_ios(keep: [socket, @admin_socket])
        end
        exit(status)
      end
      status_writer.close
      worker = WorkerHandle.new(index: index, pid: pid, status: status_reader, spawned_at: now)
      @workers << worker
      worker
    rescue SystemCallError => e
      [status_reader, status_writer].each { |io| io&.close unless io&.closed? }
      @logger.error("cannot fork worker #{index}: #{e.message}; trying again in #{FORK_RETRY}s")
      @respawn_at[index] = now + FORK_RETRY
      nil
    end

    # In a new worker: everything the master holds that is not the worker's own.
    def close_master_ios(keep:)
      ios = [@wake_reader, @wake_writer, @lifeline_writer, *@workers.map(&:status), *@binder.sockets]
      ios.each { |io| io.close unless keep.include?(io) || io.closed? }
    end

    def stop_worker(worker)
      mark_stopping(worker)
      Process.kill('TERM', worker.pid)
    rescue Errno::ESRCH
      nil
    end

    def mark_stopping(worker)
      worker.state = :stopping
      worker.stop_deadline = now + @config.graceful_timeout + SHUTDOWN_MARGIN
    end

    def kill(worker)
      worker.killed = true
      Process.kill('KILL', worker.pid)
    rescue Errno::ESRCH
      nil
    end

    def n_workers(count)
      count == 1 ? '1 worker' : "#{count} workers"
    end

    def log_boot
      @logger.info("Hyperion #{VERSION} (ruby #{RUBY_VERSION}) in #{@config.environment}, master pid #{Process.pid}")
      @logger.info("cluster: #{n_workers(@count)} (#{@binder.model}), preload_app: #{@config.preload_app}, " \
                   "threads: #{@config.threads} per worker, idle_keepalive: #{@config.idle_keepalive}s")
      @binder.addresses.each { |address| @logger.info("listening on #{address}") }
      @launcher.log_admin(@admin_binder ? @admin_binder.addresses : [])
    end
  end
end
