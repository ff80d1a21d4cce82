# frozen_string_literal: true

module Hyperion
  # One server process: the native engine (listeners, connections, parsing, writing) plus the
  # Ruby threads that run the application.
  #
  # Threads wait for work inside the engine with the GVL released, so idle keep-alive
  # connections cost no thread, and signal traps run while everything waits.
  class Server
    extend Routes

    attr_reader :config, :app

    # `listeners`: engine listener entries to use instead of config.listener, e.g.
    # [["fd", socket.fileno]] for a socket a cluster worker inherited.
    def initialize(app, config:, logger:, listeners: nil)
      @app = app
      @config = config
      @logger = logger
      @listeners = listeners
      @engine = nil
      @threads = []
    end

    # Binds the listeners and starts the application threads. Raises Hyperion::BindError.
    def start
      # The engine writes a byte here when it has stopped. Waiting on a Ruby IO (rather than
      # inside the extension) is what lets signal traps run on the main thread.
      @stopped_reader, @stopped_writer = IO.pipe
      @engine = Native::Engine.start(engine_options)
      @adapter = RackAdapter.new(@app, env_template: env_template, logger: @logger)
      @threads = Array.new(@config.threads) { |i| spawn_thread(i) }
      self
    end

    def addresses
      @engine ? @engine.addresses : []
    end

    def ports
      @engine ? @engine.ports : []
    end

    def stats
      @engine ? @engine.stats : {}
    end

    # [name, reason]: the connection loop the engine runs ("epoll" or "io_uring") and why.
    def io_loop
      @engine&.io_loop
    end

    # Begins a graceful stop: no new connections, in-flight requests finish within
    # graceful_timeout. Safe inside a signal trap.
    def stop
      @engine&.stop
    end

    def stopping?
      @engine ? @engine.stopping? : false
    end

    # Serves until stopped. With threads = 0 the calling thread runs the app itself.
    def wait
      if @config.threads.zero?
        work_inline
      else
        IO.select([@stopped_reader]) until @engine.stopped?
      end
      @engine.wait(nil)
      join_threads
      @stopped_reader.close
      @stopped_writer.close
    end

    private

    def engine_options
      kind, *where = @config.listener
      {
        listeners: @listeners || [[kind.to_s, *where]],
        idle_keepalive: @config.idle_keepalive.to_f,
        graceful_timeout: @config.graceful_timeout.to_f,
        request_read_timeout: @config.max_request_read_seconds.to_f,
        write_timeout: @config.write_timeout.to_f,
        max_pending: @config.max_pending,
        max_body_bytes: @config.max_body_bytes,
        max_header_bytes: @config.max_header_bytes,
        max_headers: @config.max_headers,
        max_uri_bytes: @config.max_uri_bytes,
        max_in_memory_body_bytes: @config.max_in_memory_body_bytes,
        log_level: @logger.level.to_s,
        log_format: @logger.format.to_s,
        stop_notify_fd: @stopped_writer.fileno,
        h2c: @config.h2c,
        h2_max_concurrent_streams: @config.h2_max_concurrent_streams,
        h2_initial_window_size: @config.h2_initial_window_size,
        h2_max_frame_size: @config.h2_max_frame_size,
        h2_max_header_list_size: @config.h2_max_header_list_size,
        h2_max_total_streams: @config.h2_max_total_streams == :unbounded ? 0 : @config.h2_max_total_streams,
        # Cluster workers share their listening sockets with the master and with each other;
        # the io_uring loop does not handle shared sockets yet (docs/ARCHITECTURE.md).
        io_uring: @listeners ? 'off' : @config.io_uring.to_s
      }
    end

    # Per-server env entries; each request's env starts as a copy of this.
    def env_template
      {
        'SCRIPT_NAME' => '',
        'SERVER_SOFTWARE' => "Hyperion/#{VERSION}",
        'rack.errors' => $stderr,
        'rack.multithread' => @config.threads > 1,
        'rack.multiprocess' => @config.workers != 1,
        'rack.run_once' => false,
        'rack.hijack?' => true
      }.freeze
    end

    def spawn_thread(index)
      Thread.new do
        Thread.current.name = "hyperion-app-#{index}"
        Thread.current.report_on_exception = false
        work
      end
    end

    # Takes exchanges until the engine has stopped and the queue is empty.
    def work
      while (exchange = @engine.next_exchange(nil))
        @adapter.call(exchange)
      end
    rescue StandardError => e
      # The adapter already isolates app errors; anything here is a server bug. Keep serving.
      @logger.exception(e, 'application thread error')
      retry
    end

    # The main thread serving by itself wakes regularly so that signal traps run.
    INLINE_WAKEUP = 0.2

    def work_inline
      loop do
        exchange = @engine.next_exchange(INLINE_WAKEUP)
        break if exchange.nil?

        @adapter.call(exchange) if exchange
      end
    end

    # The engine has stopped; threads still inside the app after graceful_timeout are
    # abandoned (the process is about to exit).
    def join_threads
      deadline = Process.clock_gettime(Process::CLOCK_MONOTONIC) + 1.0
      @threads.each do |thread|
        remaining = deadline - Process.clock_gettime(Process::CLOCK_MONOTONIC)
        thread.join([remaining, 0].max)
      end
    end
  end
end
