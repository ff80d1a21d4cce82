# frozen_string_literal: true

require 'optparse'
require 'hyperion/version'
require 'hyperion/config'
require 'hyperion/logger'
require 'hyperion/log_file'

module Hyperion
  # `hyperion [options] [rackup]`: turns argv into a Config and starts the launcher.
  #
  # The options are generated from Config.settings, so every setting with a flag is listed
  # here with its default. Values are passed on as raw strings and coerced by Config, which
  # keeps one set of validation rules for flags, environment and config file.
  class CLI
    # sysexits.h EX_USAGE: the command was used incorrectly.
    EX_USAGE = 64

    def initialize(argv, env: ENV, stdout: $stdout, stderr: $stderr)
      @argv = argv.dup
      @env = env
      @stdout = stdout
      @stderr = stderr
    end

    # Returns the frozen Config, or nil when --help or --version was printed instead.
    # Raises ConfigError for unknown flags, bad values or an unusable configuration.
    def parse
      refuse_token_on_command_line
      options = {}
      config_file = nil
      action = nil
      parser = build_parser(options) { |name, value| name == :config ? config_file = value : action = name }

      begin
        rest = parser.parse(@argv)
      rescue OptionParser::ParseError => e
        raise ConfigError, e.message
      end

      case action
      when :version then @stdout.puts("hyperion-rb #{VERSION}")
      when :help then @stdout.puts(parser.help)
      end
      return nil if action

      raise ConfigError, "expected at most one rackup file, got: #{rest.join(' ')}" if rest.size > 1

      options[:rackup] = rest.first unless rest.empty?
      Config.resolve(cli: options, env: @env, config_file: config_file, warn: ->(message) { @stderr.puts("hyperion: #{message}") })
    end

    # Parses argv and runs the server; returns the process exit code.
    def run
      config = parse
      return 0 if config.nil?

      LogFile.open(config.log_file) if config.log_file
      format = Logger.resolve_format(config.log_format, environment: config.environment, io: @stdout)
      logger = Logger.new(level: config.log_level, out: @stdout, err: @stderr, format: format)
      require 'hyperion/launcher'
      status = Launcher.new(config, logger: logger).run
      return status if status.is_a?(Integer)

      status == false ? 1 : 0
    rescue ConfigError => e
      @stderr.puts("hyperion: #{e.message}")
      @stderr.puts("Run 'hyperion --help' for usage.")
      EX_USAGE
    end

    private

    # `--admin-token` and its abbreviations, which OptionParser would otherwise complete to
    # --admin-token-file, reading the token as a path (and printing it in the error).
    TOKEN_FLAG = /\A--admin-t(?:o(?:k(?:e(?:n)?)?)?)?(?:=|\z)/.freeze

    def refuse_token_on_command_line
      @argv.each do |arg|
        break if arg == '--'
        next unless arg.match?(TOKEN_FLAG)

        raise ConfigError, 'there is no --admin-token flag: a command line is visible to every user of the ' \
                           'machine; use --admin-token-file PATH, HYPERION_ADMIN_TOKEN or admin_token in the config file'
      end
    end

    def build_parser(options)
      defaults = Config.defaults
      OptionParser.new do |opts|
        opts.banner = 'Usage: hyperion [options] [rackup]'
        opts.separator ''
        opts.separator "Starts a Rack application (rackup defaults to #{defaults.rackup})."
        opts.separator ''
        opts.separator 'Options:'
        Config.settings.each_value do |setting|
          next unless setting.cli

          default = defaults.public_send(setting.name)
          # Backticks are Markdown for the docs; a terminal shows them literally.
          opts.on(*[setting.flag, setting.switch].compact,
                  "#{setting.doc.delete('`')} (default: #{default.nil? ? 'unset' : default})") do |value|
            options[setting.name] = setting.repeat ? [*options[setting.name], value] : value
          end
        end
        opts.on('-C', '--config PATH', "Config file (default: #{Config::DEFAULT_CONFIG_FILE} if it exists)") do |path|
          yield :config, path
        end
        opts.on('-v', '--version', 'Print the version and exit') { yield :version }
        opts.on('-h', '--help', 'Print this help and exit') { yield :help }
        opts.separator ''
        opts.separator 'Every setting can also be given as an environment variable HYPERION_<SETTING> (e.g.'
        opts.separator 'HYPERION_PORT) or in the config file. Precedence: flag > environment > config file > default.'
      end
    end
  end
end
