# frozen_string_literal: true

require 'hyperion/hooks'

module Hyperion
  # One worker process of a cluster, from just after fork to exit: signal handling, the app
  # (preloaded by the master or loaded here), on_worker_boot, a Server on the listening socket
  # inherited from the master, then on_worker_shutdown once it has stopped.
  #
  # The worker talks to the master over two pipes: it writes `booted` and `stopping` lines to
  # its status pipe, and reads the lifeline pipe, whose write end only the master holds, so
  # EOF there means the master is gone and the worker stops too.
  class Worker
    STOP_SIGNALS = %w[TERM INT QUIT].freeze
    # Cluster-wide signals are the master's; a worker must not die of their default action.
    MASTER_SIGNALS = %w[USR1 USR2 TTIN TTOU].freeze

    # `early_signals`: the master's signal queue as this process inherited it, holding what
    # arrived between fork and #run installing the worker's own traps.
    # `admin_socket`: the admin listener's socket, shared by every worker, or nil.
    def initialize(index:, config:, logger:, socket:, status:, lifeline:, app:, launcher:, early_signals: [],
                   admin_socket: nil, tls_tickets: nil)
      @index = index
      @config = config
      @logger = logger
      @socket = socket
      @admin_socket = admin_socket
      @status = status
      @lifeline = lifeline
      @app = app
      @launcher = launcher
      @early_signals = early_signals
      @tls_tickets = tls_tickets
      @hooks = Hooks.new(config.hooks, logger)
      @server = nil
      @stopping = false
    end

    # Returns the process exit status. Yields once the worker's signal handling is in place,
    # for the caller to close what the process inherited from the master.
    def run
      # This worker's counters go to its index's slot of the region the master mapped.
      Native.metrics_slot(@index)
      install_traps
      yield if block_given?
      $PROGRAM_NAME = "hyperion: worker #{@index} (master #{ENV.fetch('HYPERION_MASTER_PID', '?')})"
      watch_master
      app = @app || @launcher.load_app
      @hooks.run(:on_worker_boot, @index)
      serve(app)
      @hooks.run(:on_worker_shutdown, @index)
      0
    rescue Exception => e # rubocop:disable Lint/RescueException -- the last word before exit
      @logger.exception(e, "worker #{@index} (pid #{Process.pid}) failed")
      1
    end

    private

    def serve(app)
      @server = Server.new(app, config: @config, logger: @logger, listeners: [['fd', @socket.fileno]],
                                admin_listeners: @admin_socket && [['fd', @admin_socket.fileno]],
                                master_pid: master_pid, tls_tickets: @tls_tickets)
      @server.start
      # The engine accepts on its own duplicates; the master keeps the sockets themselves.
      @socket.close
      @admin_socket&.close
      @server.stop if @stopping
      report('booted')
      name, reason = @server.io_loop
      @logger.info("worker #{@index} booted (pid #{Process.pid}), connection loop: #{name} (#{reason}), scheduling: #{@server.scheduling}")
      @server.wait
    end

    def install_traps
      STOP_SIGNALS.each do |signal|
        Signal.trap(signal) { stop("#{signal} received") }
      end
      # The master relays USR2 (after making a new ticket key current) so the certificate is read
      # again. A worker not serving yet reads the files when its engine starts.
      Signal.trap('USR2') { @server&.reload_tls } if @config.tls?
      (MASTER_SIGNALS - (@config.tls? ? ['USR2'] : [])).each do |signal|
        Signal.trap(signal) do
          @logger.info("worker #{@index} ignores #{signal}; cluster signals go to the master (pid #{Process.ppid})")
        end
      end
      # The master relays HUP after reopening log_file itself; each worker's descriptors are
      # its own, so it reopens too.
      Signal.trap('HUP') { reopen_logs }
      Signal.trap('CHLD', 'DEFAULT')
      early = @early_signals & STOP_SIGNALS
      stop("#{early.first} received") unless early.empty?
    end

    def reopen_logs
      return unless @config.log_file

      LogFile.reopen(@config.log_file)
      @logger.info("worker #{@index} reopened #{@config.log_file}")
    rescue SystemCallError, IOError => e
      @logger.error("worker #{@index} cannot reopen #{@config.log_file}: #{e.message}")
    end

    # Safe in a signal trap and from another thread. A worker stopped before it has booted
    # stops as soon as its server is up; one already stopping ignores the repeat (the master
    # decides when waiting has lasted long enough).
    def stop(reason)
      return if @stopping

      @stopping = true
      report('stopping')
      @logger.info("worker #{@index} (pid #{Process.pid}): #{reason}, finishing in-flight requests " \
                   "(up to #{@config.graceful_timeout}s)")
      @server&.stop
    end

    # The master exports its pid: a worker's parent is not always the master (a container's
    # init adopts orphans), and /-/quit must stop the cluster, not whatever process that is.
    def master_pid
      pid = ENV.fetch('HYPERION_MASTER_PID', '')
      pid.match?(/\A\d+\z/) ? Integer(pid, 10) : Process.ppid
    end

    def watch_master
      Thread.new do
        Thread.current.name = 'hyperion-lifeline'
        begin
          @lifeline.read
        rescue IOError, SystemCallError
          nil
        end
        stop('the master is gone')
      end
    end

    def report(message)
      @status.write_nonblock("#{message}\n", exception: false)
    rescue IOError, SystemCallError
      nil
    end
  end
end
