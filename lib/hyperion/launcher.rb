# frozen_string_literal: true

require 'hyperion'

module Hyperion
  # Boots a server from a resolved Config and returns the process exit status. With one
  # worker (the default) this process loads the app, binds, installs signal handling and
  # serves until told to stop; with any other count it becomes a cluster master
  # (Hyperion::Cluster).
  class Launcher
    STOP_SIGNALS = %w[TERM INT].freeze

    def initialize(config, logger:)
      @config = config
      @logger = logger
    end

    def run
      ENV['RACK_ENV'] = @config.environment
      TLS.check!(@config)
      if @config.workers != 1
        require 'hyperion/cluster'
        return Cluster.new(@config, logger: @logger, launcher: self).run
      end

      run_single
    end

    # The Rack application of the configured rackup, or the welcome app when there is none; in
    # development inside Rack::Lint, as under Puma, so SPEC violations show up while writing the
    # app rather than in production. Loading the app also registers what belongs to it: the
    # request hooks of the config file and the page cache (so in cluster mode they live wherever
    # the app is loaded: the master before fork with preload_app, else each worker).
    def load_app
      app =
        if check_app == :welcome
          @logger.info("no rackup given and no #{@config.rackup} in #{Dir.pwd}: serving the built-in welcome app")
          require 'hyperion/welcome_app'
          WelcomeApp.new
        else
          require 'rack'
          Rack::Builder.parse_file(@config.rackup)
        end
      register_request_hooks
      preload_static
      return app unless @config.environment == 'development'

      require 'rack/lint'
      Rack::Lint.new(app)
    end

    # Checks there is an app to load without loading it: :rackup, :welcome, or ConfigError.
    def check_app
      return :rackup if File.exist?(@config.rackup)
      return :welcome if @config.source(:rackup) == :default

      raise ConfigError, "rackup file not found: #{@config.rackup}"
    end

    # Where the admin endpoints answer, once at boot (never the token).
    def log_admin(addresses)
      return unless @config.admin_token

      where = addresses.empty? ? 'the application listener' : addresses.join(', ')
      @logger.info("admin endpoints /-/metrics and /-/quit on #{where} (X-Hyperion-Admin-Token)")
    end

    private

    def run_single
      hooks = @config.hooks.select { |name, blocks| Config::HOOKS.include?(name) && !blocks.empty? }.keys
      unless hooks.empty?
        @logger.warn("#{hooks.join(', ')} hooks run in cluster mode only (workers other than 1); ignoring them")
      end
      app = load_app
      server = Server.new(app, config: @config, logger: @logger)
      install_traps(server)
      install_hup_trap
      install_tls_trap(server) if @config.tls?
      begin
        server.start
      rescue BindError => e
        @logger.fatal(e.message)
        return 1
      end
      log_boot(server)
      server.wait
      @logger.info('stopped')
      0
    end

    def register_request_hooks
      Array(@config.hooks[:on_request_start]).each { |hook| Server.on_request_start(&hook) }
      Array(@config.hooks[:on_request_end]).each { |hook| Server.on_request_end(&hook) }
    end

    # Loads the page cache: the configured directories, or else a loaded Rails app's compiled
    # assets (public/assets, fingerprinted, so immutable). One log line per directory.
    def preload_static
      entries = @config.preload_static.map { |entry| entry.merge(mount: '/') }
      entries = rails_asset_dirs if entries.empty?
      entries.each do |entry|
        started = Process.clock_gettime(Process::CLOCK_MONOTONIC)
        files, bytes = PageCache.load(entry[:dir], mount: entry[:mount], immutable: entry[:immutable])
        ms = ((Process.clock_gettime(Process::CLOCK_MONOTONIC) - started) * 1000).round(1)
        @logger.info("page cache: #{entry[:dir]} -> #{entry[:mount]}: #{files} files, #{bytes} bytes, #{ms} ms" \
                     "#{' (immutable)' if entry[:immutable]}")
      end
    rescue SystemCallError => e
      raise ConfigError, "preload_static: #{e.message}"
    end

    # Without requiring Rails: only when the app loaded it.
    def rails_asset_dirs
      return [] unless defined?(::Rails) && ::Rails.respond_to?(:public_path) && ::Rails.public_path

      dir = File.join(::Rails.public_path.to_s, 'assets')
      File.directory?(dir) ? [{ dir: dir, mount: '/assets/', immutable: true }] : []
    end

    # The first TERM/INT stops gracefully; a second one while draining exits at once.
    def install_traps(server)
      STOP_SIGNALS.each do |signal|
        Signal.trap(signal) do
          if server.stopping?
            @logger.warn("#{signal} again: exiting now")
            exit!(1)
          end
          @logger.info("#{signal} received: graceful stop (up to #{@config.graceful_timeout}s)")
          server.stop
        end
      end
    end

    # HUP reopens log_file (after a rotation renamed it).
    def install_hup_trap
      Signal.trap('HUP') do
        if @config.log_file
          begin
            LogFile.reopen(@config.log_file)
            @logger.info("HUP received: reopened #{@config.log_file}")
          rescue SystemCallError, IOError => e
            @logger.error("HUP received: cannot reopen #{@config.log_file}: #{e.message}")
          end
        else
          @logger.info('HUP received: no log_file is set (logs go to stdout and stderr); nothing to reopen')
        end
      end
    end

    # USR2: a new session-ticket key (tickets of the previous one still resume once) and the
    # certificate files read again.
    def install_tls_trap(server)
      tickets = server.tls_tickets
      Signal.trap('USR2') do
        generation = tickets.rotate
        @logger.info("USR2 received: session-ticket key generation #{generation}, reloading the certificate")
        server.reload_tls
      end
    end

    def log_boot(server)
      @logger.info("Hyperion #{VERSION} (ruby #{RUBY_VERSION}) in #{@config.environment}, pid #{Process.pid}")
      @logger.info("threads: #{@config.threads}, idle_keepalive: #{@config.idle_keepalive}s, scheduling: #{server.scheduling}")
      name, reason = server.io_loop
      @logger.info("connection loop: #{name} (#{reason})")
      server.addresses.each { |address| @logger.info("listening on #{address}") }
      log_admin(server.admin_addresses)
    end

  end
end
