# frozen_string_literal: true

require 'hyperion/version'
require 'hyperion/logger'

module Hyperion
  # Raised for any configuration the server cannot run with; the CLI turns it into exit code 64.
  class ConfigError < StandardError; end

  # The resolved, frozen server configuration.
  #
  # Every setting is declared once in the table below (name, default, type, description, CLI
  # flag). The readers, the config-file DSL, the CLI options, the environment variables and
  # docs/CONFIGURATION.md are all derived from that table, so adding a setting is one line.
  #
  # Precedence, highest first: CLI flag > environment variable > config file > default.
  class Config
    # One coercion used for every source, so `port "3000"` in a config file, `-p 3000` and
    # HYPERION_PORT=3000 all accept and reject exactly the same values.
    class Type
      attr_reader :description

      def initialize(description, &coercer)
        @description = description
        @coercer = coercer
        freeze
      end

      # Returns the coerced value or raises ArgumentError explaining what was expected.
      def coerce(value)
        @coercer.call(value)
      end
    end

    # Shorter admin tokens are refused: they could be guessed.
    ADMIN_TOKEN_MIN = 16

    INTEGER_TEXT = /\A[+-]?\d+(?:_\d+)*\z/.freeze
    NUMBER_TEXT = /\A[+-]?(?:\d+(?:_\d+)*)?(?:\.\d+)?\z/.freeze

    def self.integer_type(min:, max: nil)
      expected = max ? "an integer #{min}..#{max}" : "an integer >= #{min}"
      Type.new(expected) do |value|
        int = value if value.is_a?(Integer)
        int = Integer(value.strip, 10) if value.is_a?(String) && value.strip.match?(INTEGER_TEXT)
        raise ArgumentError, "expected #{expected}" unless int && int >= min && (max.nil? || int <= max)

        int
      end
    end

    def self.seconds_type(min:, exclusive: false)
      expected = "a number of seconds #{exclusive ? '>' : '>='} #{min}"
      Type.new(expected) do |value|
        number = value if value.is_a?(Integer) || value.is_a?(Float) || value.is_a?(Rational)
        if value.is_a?(String)
          text = value.strip
          number = Integer(text, 10) if text.match?(INTEGER_TEXT)
          number ||= Float(text) if text.match?(NUMBER_TEXT) && text.match?(/\d/)
        end
        valid = number && number.to_f.finite? && (exclusive ? number > min : number >= min)
        raise ArgumentError, "expected #{expected}" unless valid

        number
      end
    end

    def self.string_type
      Type.new('a non-empty string') do |value|
        value = value.to_path if value.respond_to?(:to_path)
        value = value.to_s if value.is_a?(Symbol)
        raise ArgumentError, 'expected a non-empty string' unless value.is_a?(String) && !value.strip.empty?
        raise ArgumentError, 'must not contain NUL bytes' if value.include?("\0")

        value.dup.freeze
      end
    end

    # An integer, or `unbounded` (returned as the Symbol :unbounded).
    def self.count_or_unbounded_type(min:)
      integers = integer_type(min: min)
      Type.new("an integer >= #{min}, or unbounded") do |value|
        if (value.is_a?(String) || value.is_a?(Symbol)) && value.to_s.strip.downcase == 'unbounded'
          :unbounded
        else
          begin
            integers.coerce(value)
          rescue ArgumentError
            raise ArgumentError, "expected an integer >= #{min}, or unbounded"
          end
        end
      end
    end

    def self.symbol_type(choices)
      expected = "one of #{choices.join(', ')}"
      Type.new(expected) do |value|
        name = value.to_s.strip.downcase.to_sym if value.is_a?(String) || value.is_a?(Symbol)
        raise ArgumentError, "expected #{expected}" unless choices.include?(name)

        name
      end
    end

    # Directories for the page cache: a String (several joined with `:`), or an Array of
    # Strings or { dir:, immutable: } Hashes. Flags and environment values are immutable.
    def self.static_dirs_type
      Type.new('directories (DIR or DIR:DIR)') do |value|
        items = value.is_a?(String) ? value.split(':') : Array(value)
        items.map do |item|
          entry = item.is_a?(Hash) ? item : { dir: item, immutable: true }
          dir = entry[:dir].to_s.strip
          raise ArgumentError, 'expected a directory path' if dir.empty? || dir.include?("\0")

          { dir: dir.freeze, immutable: entry.fetch(:immutable, true) ? true : false }.freeze
        end.freeze
      end
    end

    def self.boolean_type
      Type.new('true or false (also yes/no, on/off, 1/0)') do |value|
        text = value.strip.downcase if value.is_a?(String)
        case text || value
        when true, 'true', 'yes', 'on', '1' then true
        when false, 'false', 'no', 'off', '0' then false
        else raise ArgumentError, 'expected true or false'
        end
      end
    end

    # The admin token: long enough not to be guessed, and only characters that survive an HTTP
    # header unchanged (no spaces, which a header value's parser would trim).
    def self.token_type
      Type.new("at least #{ADMIN_TOKEN_MIN} printable ASCII characters, no spaces") do |value|
        unless value.is_a?(String) && value.match?(/\A[\x21-\x7e]+\z/)
          raise ArgumentError, 'expected printable ASCII characters without spaces'
        end
        raise ArgumentError, "must be at least #{ADMIN_TOKEN_MIN} characters" if value.size < ADMIN_TOKEN_MIN

        value.dup.freeze
      end
    end

    def self.bind_type
      strings = string_type
      Type.new('host, [ipv6], tcp://host:port or unix:///path.sock') do |value|
        bind = strings.coerce(value).strip.freeze
        parse_bind(bind)
        bind
      end
    end

    # A row of the settings table. `flag` is the short CLI flag (the long one is derived from
    # the name), `arg` the placeholder shown in --help (nil makes the flag an on/off switch,
    # `--[no-]name`), `env` extra environment variables read after HYPERION_<NAME>, `aliases`
    # extra DSL method names, `example` a value shown in the docs when the default is nil.
    # `cli: false` means the setting has no option flag (rackup is the positional argument).
    # `repeat: true`: the flag may be given several times, each adding to a list.
    # `secret: true`: the value is never shown (inspect, error messages).
    Setting = Struct.new(:name, :default, :type, :doc, :flag, :arg, :env, :aliases, :example, :cli, :repeat,
                         :secret, keyword_init: true) do
      def env_keys
        ["HYPERION_#{name.to_s.upcase}", *env]
      end

      def long_flag
        "--#{name.to_s.tr('_', '-')}" if cli
      end

      # The long option as OptionParser and the docs show it.
      def switch
        return unless cli

        arg ? "#{long_flag} #{arg}" : "--[no-]#{name.to_s.tr('_', '-')}"
      end
    end

    @settings = {}

    class << self
      # name => Setting, in declaration order.
      attr_reader :settings

      private

      def setting(name, default, type, doc, flag: nil, arg: 'VALUE', env: [], aliases: [], example: nil, cli: true,
                  repeat: false, secret: false)
        @settings[name] = Setting.new(name: name, default: default, type: type, doc: doc, flag: flag, arg: arg,
                                      env: env.freeze, aliases: aliases.freeze, example: example, cli: cli,
                                      repeat: repeat, secret: secret).freeze
        define_method(name) { @values.fetch(name) }
      end
    end

    LINUX = RUBY_PLATFORM.include?('linux')
    WORKER_MODELS = %i[reuseport share].freeze

    # name, default, type, description, options
    setting :bind, '127.0.0.1', bind_type, 'Address to listen on: host, IPv6 (`::1` or `[::1]`), `tcp://host:port` or `unix:///path.sock`. A port given here wins over `port`.', flag: '-b', arg: 'ADDRESS'
    setting :port, 9292, integer_type(min: 0, max: 65_535), 'TCP port (0 picks a free one). Also read from `PORT`.', flag: '-p', arg: 'PORT', env: %w[PORT]
    setting :threads, 5, integer_type(min: 0), 'Request threads per process; 0 runs the app inline on one thread.', flag: '-t', arg: 'N', aliases: %i[thread_count]
    setting :workers, 1, integer_type(min: 0), 'Worker processes: 1 serves from this one process; N > 1 forks N workers (cluster mode); 0 forks one per CPU.', flag: '-w', arg: 'N'
    setting :environment, 'development', string_type, 'Application environment. Also read from `RACK_ENV`, then `RAILS_ENV`.', flag: '-e', arg: 'NAME', env: %w[RACK_ENV RAILS_ENV]
    setting :rackup, 'config.ru', string_type, 'Rack application file; given on the command line as the positional argument.', cli: false
    setting :idle_keepalive, 5, seconds_type(min: 0, exclusive: true), 'Seconds an idle keep-alive connection is kept open.', arg: 'SECONDS'
    setting :graceful_timeout, 30, seconds_type(min: 0), 'Seconds in-flight requests get to finish on shutdown.', arg: 'SECONDS'
    setting :log_level, :info, symbol_type(Logger::LEVELS.keys), 'Minimum log level: debug, info, warn, error or fatal.', arg: 'LEVEL'
    setting :log_format, :auto, symbol_type(%i[auto text json]), 'Log line format: `text`, `json`, or `auto`: JSON when the environment is production or stdout is not a terminal (piped, a file), text on a terminal.', arg: 'FORMAT'
    setting :log_requests, true, boolean_type, 'One access log line per response (info level, to stdout): method, path, status, duration_ms, remote_addr, http_version, bytes, request_id.', arg: nil
    setting :log_file, nil, string_type, 'Append stdout and stderr (every log line) to this file instead; `HUP` reopens it after a rotation.', arg: 'PATH', example: 'log/hyperion.log'
    setting :max_body_bytes, 1_073_741_824, integer_type(min: 1), 'Largest request body accepted, in bytes (1073741824 = 1 GiB).', arg: 'N'
    setting :max_header_bytes, 65_536, integer_type(min: 1), 'Largest request head (request line + headers) accepted, in bytes; larger gets 431.', arg: 'N'
    setting :max_headers, 100, integer_type(min: 1), 'Most header fields in a request (and in chunked trailers); more gets 431.', arg: 'N'
    setting :max_uri_bytes, 8192, integer_type(min: 1), 'Longest request target (path and query) accepted, in bytes; longer gets 414.', arg: 'N'
    setting :max_request_read_seconds, 30, seconds_type(min: 0, exclusive: true), 'Seconds a request head may take to arrive from its first byte, and a body may go without progress; then 408 (slowloris defence). For a gRPC body the app reads as it arrives, the longest a read waits for bytes (then Hyperion::InputError).', arg: 'SECONDS'
    setting :write_timeout, 60, seconds_type(min: 0, exclusive: true), 'Seconds a response write may make no progress before the client is dropped.', arg: 'SECONDS'
    setting :max_pending, 4096, integer_type(min: 1), 'Requests waiting for a free thread before new ones are answered 503 with retry-after.', arg: 'COUNT'
    setting :preload_static, [].freeze, static_dirs_type, 'Directory whose files are loaded at boot into the page cache and served by the engine for GET/HEAD of their URL path (repeatable; DSL: `preload_static DIR, immutable: false` to re-check changed files every 5 s).', arg: 'DIR', repeat: true
    setting :max_in_memory_body_bytes, 131_072, integer_type(min: 0), 'Request bodies larger than this are stored in an unlinked temp file (in TMPDIR) instead of memory.', arg: 'N'
    setting :preload_app, true, boolean_type, 'Cluster mode: load the application in the master before forking, so workers share its memory copy-on-write; false loads it in each worker after fork.', arg: nil
    setting :worker_model, LINUX ? :reuseport : :share, symbol_type(WORKER_MODELS), 'Cluster mode: `reuseport` gives each worker its own `SO_REUSEPORT` listening socket and the kernel balances connections (Linux only; the default there); `share` has all workers accept on one socket (the default elsewhere). Unix sockets always use `share`.', arg: 'MODEL'
    setting :worker_max_rss_mb, nil, integer_type(min: 1), 'Cluster mode: a worker whose resident memory exceeds this many MiB is replaced gracefully. Unset: no limit.', arg: 'MB', example: 1024
    setting :worker_check_interval, 5, seconds_type(min: 0, exclusive: true), 'Cluster mode: seconds between checks of the workers\' memory.', arg: 'SECONDS'
    setting :worker_boot_timeout, 60, seconds_type(min: 0, exclusive: true), 'Cluster mode: seconds a new worker has to load the application and run its boot hooks; slower ones are killed and replaced.', arg: 'SECONDS'
    setting :io_uring, :off, symbol_type(%i[off auto on]), 'Connection loop: `off` (epoll), `auto` (io_uring when the kernel supports it, else epoll) or `on` (io_uring, or refuse to start). Linux only; the boot log says which loop runs and why. In cluster mode each worker makes its own choice and logs it. With TLS, `auto` uses epoll and `on` refuses to start (the ring serves plain TCP only).', arg: 'MODE'
    setting :cpu_scheduling, :batch, symbol_type(%i[batch normal]), 'Linux scheduling policy of the application threads (and of threads started from them): `batch` (`SCHED_BATCH`) means a woken application thread does not preempt the I/O thread that woke it, which hands over every ready request before one runs (on a shared core: far fewer thread switches, more requests per second, lower tail latency); `normal` keeps the default policy. The I/O thread always keeps the process\'s own policy, so it still preempts a thread busy in Ruby. A process started under another policy (`chrt`) keeps it.', arg: 'POLICY'
    setting :admin_token, nil, token_type, 'Enables the admin endpoints `GET /-/metrics` and `POST /-/quit` (docs/ADMIN.md), answered by the engine to requests whose `X-Hyperion-Admin-Token` header carries this token. Config file or environment only, never a flag: command lines are visible to every user. Unset (and no `admin_token_file`): the endpoints do not exist.', cli: false, secret: true, example: 'ENV.fetch("ADMIN_TOKEN")'
    setting :admin_token_file, nil, string_type, 'File holding the admin token (one trailing newline is ignored). Refused when others may read it or group or others may write it.', arg: 'PATH', example: '/etc/hyperion/admin_token'
    setting :admin_listener_port, nil, integer_type(min: 0, max: 65_535), 'Serve the admin endpoints on this TCP port (0 picks a free one) instead of the application listener, where `/-/` paths then reach the app. Needs an admin token. Unset: the application listener answers them.', arg: 'PORT', example: 9293
    setting :admin_listener_host, '127.0.0.1', string_type, 'Address of the admin listener (`admin_listener_port`).', arg: 'HOST'
    setting :tls_cert_path, nil, string_type, 'PEM certificate chain (the server certificate first, then intermediates). With `tls_key_path`, every listener speaks TLS 1.2 and 1.3 (docs/TLS.md); USR2 reloads it.', flag: '--tls-cert PATH', arg: 'PATH', example: 'config/cert.pem'
    setting :tls_key_path, nil, string_type, 'PEM private key of `tls_cert_path`, unencrypted: PKCS#8, PKCS#1 (RSA) or SEC1 (EC).', flag: '--tls-key PATH', arg: 'PATH', example: 'config/key.pem'
    setting :tls_handshake_timeout, 10, seconds_type(min: 0, exclusive: true), 'Seconds a TLS handshake may take before the connection is closed.', arg: 'SECONDS'
    setting :tls_handshake_rate_limit, nil, integer_type(min: 1), 'TLS handshakes started per second, per process (per worker in cluster mode); connections over it are closed before the handshake and counted. Unset: unlimited.', arg: 'N', example: 500
    setting :h2c, true, boolean_type, 'HTTP/2 over plain TCP with prior knowledge: a connection whose first bytes are the HTTP/2 preface is served as HTTP/2 (docs/HTTP2.md). `Upgrade: h2c` is ignored (answered as HTTP/1.1).', arg: nil
    setting :h2_max_concurrent_streams, 128, integer_type(min: 1, max: 2_147_483_647), 'HTTP/2: streams one connection may have open at once (SETTINGS_MAX_CONCURRENT_STREAMS). DSL also: `h2 { max_concurrent_streams 128 }`.', arg: 'N'
    setting :h2_initial_window_size, 1_048_576, integer_type(min: 1, max: 2_147_483_647), 'HTTP/2: bytes of request body a stream may send before the server has taken them in (SETTINGS_INITIAL_WINDOW_SIZE).', arg: 'BYTES'
    setting :h2_max_frame_size, 16_384, integer_type(min: 16_384, max: 16_777_215), 'HTTP/2: largest frame payload the server accepts (SETTINGS_MAX_FRAME_SIZE).', arg: 'BYTES'
    setting :h2_max_header_list_size, 65_536, integer_type(min: 1024), 'HTTP/2: largest decoded header list of a request (SETTINGS_MAX_HEADER_LIST_SIZE); larger gets 431.', arg: 'BYTES'
    setting :h2_max_total_streams, 1024, count_or_unbounded_type(min: 1), 'HTTP/2: streams open across all connections of one process (worker); more are refused with RST_STREAM REFUSED_STREAM and the connection lives on. `unbounded` removes the cap.', arg: 'N'

    @settings.freeze

    # Settings grouped under a block in the config file: `h2 do max_concurrent_streams 64 end`
    # sets h2_max_concurrent_streams.
    GROUPS = { h2: %i[max_concurrent_streams initial_window_size max_frame_size max_header_list_size
                      max_total_streams] }.freeze

    DEFAULT_CONFIG_FILE = 'config/hyperion.rb'

    # Blocks a config file can register (see Hyperion::DSL); cluster mode runs them.
    HOOKS = %i[before_fork on_worker_boot on_worker_shutdown].freeze

    private_class_method :new

    # Builds the configuration from all sources; see the class comment for precedence.
    #
    # cli:         settings from the command line, symbol keys, raw strings or typed values.
    # env:         anything with #[] (normally ENV). Bad values are reported through `warn` and ignored.
    # config_file: path of a config file; when nil, config/hyperion.rb is loaded if it exists.
    # warn:        a callable, or a logger responding to #warn.
    def self.resolve(cli: {}, env: ENV, config_file: nil, warn: ->(message) { $stderr.puts(message) })
      values = {}
      sources = {}
      settings.each_value do |setting|
        values[setting.name] = setting.default
        sources[setting.name] = :default
      end

      path = locate_config_file(config_file)
      hooks = {}
      if path
        file_values, hooks = load_file(path)
        file_values.each do |name, value|
          values[name] = value
          sources[name] = :file
        end
      end

      settings.each_value do |setting|
        value, found = read_env(setting, env, warn)
        next unless found

        values[setting.name] = value
        sources[setting.name] = :env
      end

      cli.each do |key, raw|
        next if raw.nil?

        setting = lookup(key) || raise(ConfigError, "unknown setting #{key.inspect}")
        values[setting.name] = coerce(setting, raw, setting.long_flag || 'command line')
        sources[setting.name] = :cli
      end

      read_admin_token_file(values, sources)
      check_supported!(values, sources)
      new(values, sources, path && File.expand_path(path), hooks)
    end

    # A frozen Config holding every default.
    def self.defaults
      values = settings.transform_values(&:default)
      new(values, values.transform_values { :default }, nil, {})
    end

    # The Setting named `name` or one of its aliases, or nil.
    def self.lookup(name)
      name = name.to_sym
      settings[name] || settings.each_value.find { |setting| setting.aliases.include?(name) }
    end

    # Coerces `raw` for `setting`, raising ConfigError that names the setting, the value and
    # where it came from (`origin`: a flag, an environment variable or file:line).
    def self.coerce(setting, raw, origin)
      setting.type.coerce(raw)
    rescue ArgumentError => e
      shown = setting.secret ? '(hidden)' : raw.inspect
      raise ConfigError, "invalid value #{shown} for #{setting.name} (#{origin}): #{e.message}"
    end

    # Splits a bind string into [:unix, path] or [:tcp, host, port-or-nil]. IPv6 hosts are
    # returned without brackets. Raises ArgumentError for anything it cannot listen on.
    def self.parse_bind(bind)
      case bind
      when %r{\Aunix://(.+)\z}
        [:unix, Regexp.last_match(1)]
      when %r{\Atcp://(.*)\z}
        [:tcp, *split_host_port(Regexp.last_match(1), bind)]
      when %r{\A([a-z][a-z0-9+.-]*)://}i
        raise ArgumentError, "unsupported scheme #{Regexp.last_match(1)}:// (use tcp:// or unix://)"
      else
        [:tcp, *split_host_port(bind, bind)]
      end
    end

    def self.split_host_port(address, bind)
      host, port =
        case address
        when /\A\[([0-9a-fA-F:.]+(?:%[\w.-]+)?)\](?::(\d+))?\z/ then [Regexp.last_match(1), Regexp.last_match(2)]
        when /\A[0-9a-fA-F]*:[0-9a-fA-F]*:[0-9a-fA-F:.]*(?:%[\w.-]+)?\z/ then [address, nil]
        when /\A([A-Za-z0-9_.*-]+)(?::(\d+))?\z/ then [Regexp.last_match(1), Regexp.last_match(2)]
        else raise ArgumentError, "cannot parse #{bind.inspect} as an address"
        end
      port &&= Integer(port, 10)
      raise ArgumentError, "port #{port} in #{bind.inspect} is outside 0..65535" if port && port > 65_535

      [host, port]
    end
    private_class_method :split_host_port

    # A token file others could read (or change) would hand them the server: refuse it, as ssh
    # refuses a private key with loose permissions. The token read becomes admin_token.
    def self.read_admin_token_file(values, sources)
      path = values[:admin_token_file]
      return unless path

      if values[:admin_token]
        raise ConfigError, "admin_token (from #{sources[:admin_token]}) and admin_token_file " \
                           "(from #{sources[:admin_token_file]}) are both set; use one"
      end
      stat = begin
        File.stat(path)
      rescue SystemCallError => e
        raise ConfigError, "admin_token_file #{path}: #{e.message}"
      end
      raise ConfigError, "admin_token_file #{path} is not a regular file" unless stat.file?
      if stat.mode.anybits?(0o026)
        raise ConfigError, format('admin_token_file %<path>s has mode %<mode>04o: others may read it or group or ' \
                                  'others may write it; run chmod 600 %<path>s', path: path, mode: stat.mode & 0o7777)
      end
      token = begin
        File.read(path).delete_suffix("\n").delete_suffix("\r")
      rescue SystemCallError => e
        raise ConfigError, "admin_token_file #{path}: #{e.message}"
      end
      values[:admin_token] = coerce(settings.fetch(:admin_token), token, "admin_token_file #{path}")
      sources[:admin_token] = sources[:admin_token_file]
    end
    private_class_method :read_admin_token_file

    # Combinations each value allows alone but this platform cannot run.
    def self.check_supported!(values, sources)
      if values[:admin_listener_port] && values[:admin_token].nil?
        raise ConfigError, "admin_listener_port (from #{sources[:admin_listener_port]}) needs an admin token: " \
                           'set admin_token (config file), HYPERION_ADMIN_TOKEN or --admin-token-file'
      end
      if values[:tls_cert_path].nil? != values[:tls_key_path].nil?
        given, missing = values[:tls_cert_path] ? %i[tls_cert_path tls_key_path] : %i[tls_key_path tls_cert_path]
        raise ConfigError, "#{given} (from #{sources[given]}) needs #{missing} too"
      end
      if values[:io_uring] == :on && values[:tls_cert_path]
        raise ConfigError, "io_uring on (from #{sources[:io_uring]}) cannot serve TLS: the io_uring loop serves " \
                           'plain TCP only; use io_uring auto or off'
      end
      return unless values[:worker_model] == :reuseport && !LINUX

      raise ConfigError, "worker_model reuseport (from #{sources[:worker_model]}) needs Linux, whose kernel " \
                         'balances connections between SO_REUSEPORT sockets; use worker_model share'
    end
    private_class_method :check_supported!

    def self.locate_config_file(path)
      return (File.file?(DEFAULT_CONFIG_FILE) ? DEFAULT_CONFIG_FILE : nil) if path.nil?

      path = path.to_s
      raise ConfigError, "config file not found: #{path}" unless File.file?(path)

      path
    end
    private_class_method :locate_config_file

    def self.load_file(path)
      require 'hyperion/dsl'
      DSL.load(path)
    end
    private_class_method :load_file

    # Returns [value, true] for the first usable environment variable of `setting`, or
    # [nil, false]. Empty variables count as unset; invalid ones are reported and skipped so a
    # stray variable never stops a deploy (except a secret, which is refused).
    def self.read_env(setting, env, warn)
      setting.env_keys.each do |key|
        raw = env[key]
        next if raw.nil? || raw.strip.empty?

        begin
          return [coerce(setting, raw, key), true]
        rescue ConfigError => e
          # Ignoring a bad token would leave the admin endpoints missing without a word.
          raise if setting.secret

          report(warn, "#{e.message}; ignoring it")
        end
      end
      [nil, false]
    end
    private_class_method :read_env

    def self.report(warn, message)
      warn.respond_to?(:call) ? warn.call(message) : warn.warn(message)
    end
    private_class_method :report

    # Markdown table of every setting, embedded in docs/CONFIGURATION.md (a spec keeps the two
    # identical). Regenerate with: ruby -Ilib -rhyperion/config -e 'puts Hyperion::Config.markdown_table'
    def self.markdown_table
      rows = settings.each_value.map do |setting|
        cli =
          if setting.cli then "`#{[setting.flag, setting.switch].compact.join(', ')}`"
          elsif setting.name == :rackup then '`[rackup]` (positional)'
          else 'none'
          end
        shown = setting.default.nil? ? setting.example : setting.default
        dsl = ([setting.name] + setting.aliases).map { |name| "`#{name} #{shown.inspect}`" }.join(' or ')
        dsl = "`#{setting.name} #{shown}`" if setting.secret
        env = setting.env_keys.map { |key| "`#{key}`" }.join(', ')
        default = setting.default.nil? ? 'unset' : "`#{setting.default.inspect}`"
        "| `#{setting.name}` | #{cli} | #{env} | #{dsl} | #{default} | #{setting.type.description} | #{setting.doc} |"
      end
      ['| Setting | CLI | Environment | Config file | Default | Accepts | Meaning |',
       '|---|---|---|---|---|---|---|', *rows].join("\n") << "\n"
    end

    attr_reader :config_file, :hooks, :listener

    def initialize(values, sources, config_file, hooks)
      super()
      @values = values.dup.freeze
      @sources = sources.dup.freeze
      @config_file = config_file&.dup&.freeze
      @hooks = hooks.transform_values { |blocks| blocks.dup.freeze }.freeze
      @listener = build_listener.freeze
      freeze
    end

    def to_h
      @values.dup
    end

    # Whether the listeners speak TLS.
    def tls?
      !tls_cert_path.nil?
    end

    # Where a setting's value came from: :cli, :env, :file or :default.
    def source(name)
      @sources.fetch(name.to_sym) { raise ArgumentError, "unknown setting #{name.inspect}" }
    end

    def inspect
      shown = @values.map do |name, value|
        "#{name}=#{value && self.class.settings[name].secret ? '(hidden)' : value.inspect}"
      end
      "#<#{self.class.name} #{shown.join(' ')}>"
    end

    # The admin listener as an engine listener entry, or nil when the admin endpoints answer on
    # the application listener (or do not exist).
    def admin_listener
      return unless admin_token && admin_listener_port

      [:tcp, admin_listener_host.delete_prefix('[').delete_suffix(']'), admin_listener_port]
    end

    private

    def build_listener
      kind, host, port = self.class.parse_bind(bind)
      kind == :unix ? [:unix, host] : [:tcp, host, port || self.port]
    rescue ArgumentError => e
      raise ConfigError, "invalid value #{bind.inspect} for bind: #{e.message}"
    end
  end
end
