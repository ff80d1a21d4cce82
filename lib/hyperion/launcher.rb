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
      if @config.workers != 1
        require 'hyperion/cluster'
        return Cluster.new(@config, logger: @logger, launcher: self).run
      end

      run_single
    end

    # The Rack application of the configured rackup, or the welcome app when there is none.
    def load_app
      if check_app == :welcome
        @logger.info("no rackup given and no #{@config.rackup} in #{Dir.pwd}: serving the built-in welcome app")
        require 'hyperion/welcome_app'
        WelcomeApp.new
      else
        require 'rack'
        Rack::Builder.parse_file(@config.rackup)
      end
    end

    # Checks there is an app to load without loading it: :rackup, :welcome, or ConfigError.
    def check_app
      return :rackup if File.exist?(@config.rackup)
      return :welcome if @config.source(:rackup) == :default

      raise ConfigError, "rackup file not found: #{@config.rackup}"
    end

    private

    def run_single
      hooks = @config.hooks.reject { |_name, blocks| blocks.empty? }.keys
      unless hooks.empty?
        @logger.warn("#{hooks.join(', ')} hooks run in cluster mode only (workers other than 1); ignoring them")
      end
      app = load_app
      server = Server.new(app, config: @config, logger: @logger)
      install_traps(server)
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

    def log_boot(server)
      @logger.info("Hyperion #{VERSION} (ruby #{RUBY_VERSION}) in #{@config.environment}, pid #{Process.pid}")
      @logger.info("threads: #{@config.threads}, idle_keepalive: #{@config.idle_keepalive}s")
      server.addresses.each { |address| @logger.info("listening on #{address}") }
    end
  end
end
