# frozen_string_literal: true

module Hyperion
  # One server process: the native engine (listeners, connections, parsing, writing) plus the
  # Ruby threads that run the application.
  #
  # Threads wait for work inside the engine with the GVL released, so idle keep-alive
  # connections cost no thread, and signal traps run while everything waits.
  class Server
    extend Routes

    attr_reader :config, :app, :tls_tickets

    # `listeners`: engine listener entries to use instead of config.listener, e.g.
    # [["fd", socket.fileno]] for a socket a cluster worker inherited; `admin_listeners` the
    # same for config.admin_listener. `master_pid`: in a cluster worker, the master, which
    # POST /-/quit signals so that the whole cluster stops (without it the server stops itself).
    # `tls_tickets`: the TLS::Tickets shared with the other processes of a cluster (with TLS on,
    # one of its own when nil).
    def initialize(app, config:, logger:, listeners: nil, admin_listeners: nil, master_pid: nil, tls_tickets: nil)
      @app = app
      @config = config
      @logger = logger
      @listeners = listeners
      @admin_listeners = admin_listeners
      @master_pid = master_pid
      @tls_tickets = tls_tickets || (config.tls? ? TLS::Tickets.new : nil)
      @reload_pending = false
      @engine = nil
      @threads = []
    end

    # Binds the listeners and starts the application threads. Raises Hyperion::BindError.
    def start
      # The engine writes a byte here when it has stopped. Waiting on a Ruby IO (rather than
      # inside the extension) is what lets signal traps run on the main thread.
      @stopped_reader, @stopped_writer = IO.pipe
      @engine = Native::Engine.start(engine_options)
      # A signal trap may have asked for a stop while the engine was starting (the port is
      # already open then, so clients and supervisors can see the process as up).
      @engine.stop if @stop_requested
      # A reload asked for while the engine was starting may have come after it read the files.
      reload_tls if @reload_pending
      @adapter = RackAdapter.new(@app, env_templates: env_templates, logger: @logger, hijack: !@config.tls?)
      @threads = start_threads
      self
    end

    def addresses
      @engine ? @engine.addresses : []
    end

    def ports
      @engine ? @engine.ports : []
    end

    # Where the admin endpoints answer: the admin listener's URLs, or [] when they answer on
    # the application listener (or do not exist).
    def admin_addresses
      @engine ? @engine.admin_addresses : []
    end

    def admin_ports
      @engine ? @engine.admin_ports : []
    end

    def stats
      @engine ? @engine.stats : {}
    end

    # Every worker's metrics in the Prometheus text format.
    def metrics_text
      @engine ? @engine.metrics_text : Native.metrics_text
    end

    # The scheduling policy the application threads run under ("batch", "normal", ...); nil
    # before start.
    attr_reader :scheduling

    # [name, reason]: the connection loop the engine runs ("epoll" or "io_uring") and why.
    def io_loop
      @engine&.io_loop
    end

    # Reads the TLS certificate and key files again; new handshakes use them. When they are
    # unusable the pair in use stays and an error is logged. Returns whether it reloaded.
    # Safe inside a signal trap.
    def reload_tls
      return false unless @config.tls?

      @reload_pending = @engine.nil?
      return false if @reload_pending

      @engine.reload_tls
      @logger.info("TLS certificate reloaded from #{@config.tls_cert_path}")
      true
    rescue TlsError => e
      @logger.error("TLS certificate not reloaded, keeping the current one: #{e.message}")
      false
    end

    # Begins a graceful stop: no new connections, in-flight requests finish within
    # graceful_timeout. Safe inside a signal trap.
    def stop
      @stop_requested = true
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
        access_log: @config.log_requests && @logger.info?,
        batch_log_writer: @config.cpu_scheduling == :batch,
        stop_notify_fd: @stopped_writer.fileno,
        h2c: @config.h2c,
        h2_max_concurrent_streams: @config.h2_max_concurrent_streams,
        h2_initial_window_size: @config.h2_initial_window_size,
        h2_max_frame_size: @config.h2_max_frame_size,
        h2_max_header_list_size: @config.h2_max_header_list_size,
        h2_max_total_streams: @config.h2_max_total_streams == :unbounded ? 0 : @config.h2_max_total_streams,
        io_uring: @config.io_uring.to_s,
        **admin_options,
        **tls_options
      }
    end

    def tls_options
      return {} unless @config.tls?

      {
        tls_cert: @config.tls_cert_path,
        tls_key: @config.tls_key_path,
        tls_handshake_timeout: @config.tls_handshake_timeout.to_f,
        tls_handshake_rate_limit: @config.tls_handshake_rate_limit,
        tls_ticket_secret: @tls_tickets.secret,
        tls_ticket_generation: @tls_tickets.generation
      }
    end

    def admin_options
      return {} unless @config.admin_token

      kind, *where = @config.admin_listener
      listeners = @admin_listeners || (kind && [[kind.to_s, *where]])
      { admin_token: @config.admin_token, admin_listeners: listeners, admin_quit_pid: @master_pid }
    end

    # Per-server env entries; each request's env starts as a copy of one of the templates made
    # from them (per scheme and protocol, with room for the request's own entries).
    def env_templates
      Native.env_templates({
        'SCRIPT_NAME' => '',
        'SERVER_SOFTWARE' => "Hyperion/#{VERSION}",
        'rack.errors' => $stderr,
        'rack.multithread' => @config.threads > 1,
        'rack.multiprocess' => @config.workers != 1,
        'rack.run_once' => false,
        # A TLS connection's bytes pass through the engine's encryption: the socket cannot be
        # handed over.
        'rack.hijack?' => !@config.tls?
      })
    end

    # The application threads (or, with threads = 0, the main thread, which serves itself) take
    # the cpu_scheduling policy; the engine's I/O thread keeps the process's own, so that it is
    # not kept waiting by a thread busy in Ruby (docs/ARCHITECTURE.md, "Scheduling policy").
    def start_threads
      mode = @config.cpu_scheduling.to_s
      if @config.threads.zero?
        @scheduling = apply_scheduling(mode)
        return []
      end
      policies = Thread::Queue.new
      threads = Array.new(@config.threads) { |i| spawn_thread(i, mode, policies) }
      @scheduling = policies.pop
      threads
    end

    def spawn_thread(index, mode, policies)
      Thread.new do
        Thread.current.name = "hyperion-app-#{index}"
        Thread.current.report_on_exception = false
        policies << apply_scheduling(mode)
        work
      end
    end

    # A system that forbids the change (a seccomp profile) leaves the thread as it was.
    def apply_scheduling(mode)
      Native.cpu_scheduling(mode)
    rescue StandardError => e
      @logger.warn('scheduling policy unchanged', error: e.message)
      'unchanged'
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
