# frozen_string_literal: true

require 'hyperion'

module Hyperion
  # Boots a server from a resolved Config: loads the app, binds, installs signal handling,
  # serves until told to stop. Returns the process exit status.
  class Launcher
    STOP_SIGNALS = %w[TERM INT].freeze

    def initialize(config, logger:)
      @config = config
      @logger = logger
    end

    def run
      ENV['RACK_ENV'] = @config.environment
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

    private

    # In development the app runs inside Rack::Lint, as under Puma, so SPEC violations show
    # up while writing the app rather than in production.
    def load_app
      app = load_rackup
      return app unless @config.environment == 'development'

      require 'rack/lint'
      Rack::Lint.new(app)
    end

    def load_rackup
      path = @config.rackup
      if File.exist?(path)
        require 'rack'
        Rack::Builder.parse_file(path)
      elsif @config.source(:rackup) == :default
        @logger.info("no rackup given and no #{path} in #{Dir.pwd}: serving the built-in welcome app")
        require 'hyperion/welcome_app'
        WelcomeApp.new
      else
        raise ConfigError, "rackup file not found: #{path}"
      end
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
      name, reason = server.io_loop
      @logger.info("connection loop: #{name} (#{reason})")
      server.addresses.each { |address| @logger.info("listening on #{address}") }
    end
  end
end
