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
    MASTER_SIGNALS = %w[HUP USR1 USR2 TTIN TTOU].freeze

    # `early_signals`: the master's signal queue as this process inherited it, holding what
    # arrived between fork and #run installing the worker's own traps.
    def initialize(index:, config:, logger:, socket:, status:, lifeline:, app:, launcher:, early_signals: [],
                   tls_tickets: nil)
      @index = index
      @config = config
      @logger = logger
      @socket = socket
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
                           tls_tickets: @tls_tickets)
      @server.start
      # The engine accepts on its own duplicate; the master keeps the socket itself.
      @socket.close
      @server.stop if @stopping
      report('booted')
      @logger.info("worker #{@index} booted (pid #{Process.pid})")
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
      Signal.trap('CHLD', 'DEFAULT')
      early = @early_signals & STOP_SIGNALS
      stop("#{early.first} received") unless early.empty?
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
