# frozen_string_literal: true

require 'json'

module Hyperion
  # Line-oriented logger shared by every thread of the server.
  #
  # Each entry is rendered into one String and handed to the IO in a single write under a
  # mutex, so lines from concurrent threads never interleave. debug/info go to `out`,
  # warn/error/fatal to `err` (pass the same IO twice to get one stream). A logger must never
  # take the server down, so write errors (closed IO, EPIPE) are swallowed.
  class Logger
    LEVELS = { debug: 0, info: 1, warn: 2, error: 3, fatal: 4 }.freeze
    FORMATS = %i[text json].freeze
    SOURCE = 'hyperion'

    # Field values made only of these characters are written bare in text format; anything
    # else is quoted so a line can always be split back into key=value pairs.
    BARE_VALUE = /\A[^\s"=\\]+\z/.freeze

    attr_reader :level, :format

    # The format for a `log_format` setting: `auto` is JSON in production or when `io` is not
    # a terminal (piped, redirected to a file), text on a terminal.
    def self.resolve_format(setting, environment:, io: $stdout)
      return setting unless setting == :auto
      return :json if environment.to_s == 'production'

      io.respond_to?(:tty?) && io.tty? ? :text : :json
    end

    def initialize(level: :info, out: $stdout, err: $stderr, format: :text)
      raise ArgumentError, "unknown log format #{format.inspect} (expected one of #{FORMATS.join(', ')})" unless FORMATS.include?(format)

      self.level = level
      @out = out
      @err = err
      @format = format
      @mutex = Mutex.new
    end

    def level=(value)
      name = value.to_s.downcase.to_sym
      raise ArgumentError, "unknown log level #{value.inspect} (expected one of #{LEVELS.keys.join(', ')})" unless LEVELS.key?(name)

      @level = name
      @threshold = LEVELS.fetch(name)
    end

    LEVELS.each_key do |name|
      define_method(name) { |message, **fields| log(name, message, **fields) }
      define_method(:"#{name}?") { LEVELS.fetch(name) >= @threshold }
    end

    # Logs an exception at error level: class, message and backtrace. In text format the
    # backtrace follows on indented continuation lines (still one write); in JSON it is an array.
    def exception(error, message = nil, **fields)
      return unless error?

      summary = "#{error.class}: #{error.message}"
      backtrace = Array(error.backtrace)
      line =
        if @format == :json
          render_json(:error, message || summary,
                      { error: error.class.name, error_message: error.message, backtrace: backtrace, **fields })
        else
          head = render_text(:error, message ? "#{message}: #{summary}" : summary, fields)
          backtrace.empty? ? head : "#{head.chomp}\n#{backtrace.map { |frame| "  #{frame}" }.join("\n")}\n"
        end
      write(@err, line)
    end

    def log(level, message, **fields)
      threshold = LEVELS.fetch(level)
      return if threshold < @threshold

      line = @format == :json ? render_json(level, message, fields) : render_text(level, message, fields)
      write(threshold >= LEVELS[:warn] ? @err : @out, line)
    end

    private

    def timestamp
      Time.now.utc.strftime('%Y-%m-%dT%H:%M:%S.%LZ')
    end

    def render_text(level, message, fields)
      # Continuation lines are indented so a multi-line message still reads as one entry.
      line = +"#{timestamp} #{level.to_s.upcase} [#{SOURCE}] #{message.to_s.gsub("\n", "\n  ")}"
      fields.each { |key, value| line << ' ' << key.to_s << '=' << text_value(value) }
      line << "\n"
    end

    def text_value(value)
      string = value.nil? ? 'nil' : value.to_s
      string.match?(BARE_VALUE) ? string : string.inspect
    end

    def render_json(level, message, fields)
      entry = { ts: timestamp, level: level.to_s, source: SOURCE, message: message.to_s }
      # The fixed keys win over fields of the same name so every entry stays parseable by
      # the same rules.
      fields.each { |key, value| entry[key.to_sym] = value unless entry.key?(key.to_sym) }
      "#{JSON.generate(jsonable(entry))}\n"
    end

    # JSON.generate raises on invalid UTF-8 and arbitrary objects; a log line must not.
    def jsonable(value)
      case value
      when Hash then value.to_h { |key, item| [key.to_s, jsonable(item)] }
      when Array then value.map { |item| jsonable(item) }
      when String then value.encode('UTF-8', invalid: :replace, undef: :replace)
      when Integer, true, false, nil then value
      when Float then value.finite? ? value : value.to_s
      else jsonable(value.to_s)
      end
    end

    def write(io, line)
      begin
        @mutex.synchronize { emit(io, line) }
      rescue ThreadError
        # Mutex#synchronize refuses inside a signal trap and when the trap interrupted this
        # very thread mid-write; one unlocked write of a whole line is the best we can do there.
        emit(io, line)
      end
      nil
    end

    def emit(io, line)
      io.write(line)
      io.flush if io.respond_to?(:flush)
    rescue IOError, SystemCallError
      nil
    end
  end
end
