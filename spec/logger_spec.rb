# frozen_string_literal: true

require 'json'
require 'stringio'
require 'time'
require 'hyperion/logger'

RSpec.describe Hyperion::Logger do
  let(:out) { StringIO.new }
  let(:err) { StringIO.new }

  # timestamp, level, message-and-fields
  let(:text_line) { /\A(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z) (DEBUG|INFO|WARN|ERROR|FATAL) \[hyperion\] (.*)\n\z/ }

  def logger(**options)
    described_class.new(out: out, err: err, **options)
  end

  describe 'routing and levels' do
    it 'sends debug/info to out and warn/error/fatal to err' do
      log = logger(level: :debug)
      %i[debug info warn error fatal].each { |level| log.public_send(level, "#{level} message") }
      expect(out.string.lines.map { |line| line[text_line, 2] }).to eq(%w[DEBUG INFO])
      expect(err.string.lines.map { |line| line[text_line, 2] }).to eq(%w[WARN ERROR FATAL])
    end

    it 'drops entries below the level, which can change at runtime' do
      log = logger(level: :warn)
      log.info('hidden')
      log.warn('shown')
      expect(out.string).to be_empty
      expect(err.string).to include('shown')

      log.level = 'debug'
      expect(log.level).to eq(:debug)
      log.debug('now shown')
      expect(out.string).to include('now shown')
      expect(log.debug?).to be(true)
    end

    it 'rejects unknown levels and formats' do
      expect { logger(level: :loud) }.to raise_error(ArgumentError, /loud/)
      expect { logger.level = :verbose }.to raise_error(ArgumentError)
      expect { logger(format: :xml) }.to raise_error(ArgumentError, /xml/)
    end

    it 'defaults to info' do
      expect(described_class.new.level).to eq(:info)
    end
  end

  describe 'text format' do
    it 'writes timestamp, level, source, message and fields' do
      logger.info('listening', host: '127.0.0.1', port: 9292, note: 'value with spaces', empty: '', none: nil)
      line = out.string
      match = text_line.match(line)
      expect(match).not_to be_nil
      expect(Time.now.utc - Time.iso8601(match[1])).to be_between(0, 5)
      expect(match[3]).to eq('listening host=127.0.0.1 port=9292 note="value with spaces" empty="" none=nil')
    end

    it 'quotes values containing quotes, = or newlines so the line stays one line' do
      logger.info('m', a: 'x="y"', b: "two\nlines")
      expect(out.string.lines.size).to eq(1)
      expect(out.string).to include('a="x=\"y\"" b="two\nlines"')
    end
  end

  describe 'json format' do
    it 'writes one JSON object per line with the fixed keys first' do
      logger(format: :json).warn('slow request', path: '/x', ms: 12.5, ok: false)
      entry = JSON.parse(err.string)
      expect(entry.keys.first(4)).to eq(%w[ts level source message])
      expect(entry).to include('level' => 'warn', 'source' => 'hyperion', 'message' => 'slow request',
                               'path' => '/x', 'ms' => 12.5, 'ok' => false)
      expect(entry['ts']).to match(/\A\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z\z/)
    end

    it 'never raises on awkward values' do
      log = logger(format: :json)
      expect { log.info("bad \xFF utf8".b, obj: Object.new, level: 'spoof', nan: Float::NAN) }.not_to raise_error
      entry = JSON.parse(out.string)
      expect(entry['level']).to eq('info')
      expect(entry['nan']).to eq('NaN')
    end
  end

  describe '#exception' do
    let(:error) do
      raise ArgumentError, 'bad thing'
    rescue ArgumentError => e
      e
    end

    it 'logs class, message and indented backtrace in one text entry on err' do
      logger.exception(error, 'request failed')
      lines = err.string.lines
      expect(lines.first).to match(/ ERROR \[hyperion\] request failed: ArgumentError: bad thing\n\z/)
      expect(lines.size).to eq(1 + error.backtrace.size)
      expect(lines.drop(1)).to all(start_with('  '))
      expect(lines[1].strip).to eq(error.backtrace.first)
      expect(out.string).to be_empty
    end

    it 'logs the backtrace as an array in JSON' do
      logger(format: :json).exception(error)
      entry = JSON.parse(err.string)
      expect(entry).to include('level' => 'error', 'message' => 'ArgumentError: bad thing',
                               'error' => 'ArgumentError', 'error_message' => 'bad thing')
      expect(entry['backtrace']).to eq(error.backtrace)
    end

    it 'handles exceptions that were never raised' do
      logger.exception(RuntimeError.new('not raised'))
      expect(err.string.lines.size).to eq(1)
      expect(err.string).to include('RuntimeError: not raised')
    end

    it 'respects the level' do
      logger(level: :fatal).exception(error)
      expect(err.string).to be_empty
    end
  end

  describe 'robustness' do
    it 'never interleaves lines across threads' do
      io = StringIO.new
      log = described_class.new(out: io, err: io, level: :debug)
      threads = Array.new(10) do |t|
        Thread.new do
          200.times do |i|
            i.even? ? log.info("thread #{t} line #{i}", t: t, i: i, pad: 'x' * 50) : log.warn("thread #{t} line #{i}", t: t, i: i)
          end
        end
      end
      threads.each(&:join)

      lines = io.string.lines
      expect(lines.size).to eq(2000)
      parsed = lines.map do |line|
        match = text_line.match(line)
        expect(match).not_to be_nil, line
        match[3][/\Athread (\d+) line (\d+) t=\1 i=\2/].then { [Regexp.last_match(1).to_i, Regexp.last_match(2).to_i] }
      end
      expect(parsed.sort).to eq((0...10).to_a.product((0...200).to_a))
    end

    it 'never interleaves JSON lines either' do
      io = StringIO.new
      log = described_class.new(out: io, err: io, format: :json)
      Array.new(10) { |t| Thread.new { 200.times { |i| log.info('m', t: t, i: i) } } }.each(&:join)
      entries = io.string.lines.map { |line| JSON.parse(line) }
      expect(entries.size).to eq(2000)
      expect(entries.map { |entry| [entry['t'], entry['i']] }.uniq.size).to eq(2000)
    end

    it 'writes each entry with a single write call' do
      io = StringIO.new
      allow(io).to receive(:write).and_call_original
      logger(err: io).exception(RuntimeError.new('x').tap { |e| e.set_backtrace(%w[a:1 b:2]) })
      expect(io).to have_received(:write).once
    end

    it 'swallows errors from closed or broken IOs' do
      closed = StringIO.new.tap(&:close)
      expect { described_class.new(out: closed, err: closed).info('x') }.not_to raise_error

      broken = Object.new
      def broken.write(*)
        raise Errno::EPIPE
      end
      log = described_class.new(out: broken, err: broken)
      expect { log.info('x') }.not_to raise_error
      expect { log.exception(RuntimeError.new('x')) }.not_to raise_error
    end

    it 'still writes from a signal trap, where Mutex is unavailable' do
      reader, writer = IO.pipe
      log = described_class.new(out: writer, err: writer)
      previous = Signal.trap('USR2') { log.info('from trap') }
      Process.kill('USR2', Process.pid)
      expect(IO.select([reader], nil, nil, 2)).not_to be_nil
      expect(reader.gets).to include('from trap')
    ensure
      Signal.trap('USR2', previous || 'DEFAULT')
      [reader, writer].each { |io| io&.close }
    end
  end

  describe '.resolve_format' do
    let(:tty) { instance_double(IO, tty?: true) }
    let(:pipe) { instance_double(IO, tty?: false) }

    it 'keeps an explicit format' do
      expect(described_class.resolve_format(:text, environment: 'production', io: pipe)).to eq(:text)
      expect(described_class.resolve_format(:json, environment: 'development', io: tty)).to eq(:json)
    end

    it 'picks JSON in production or when stdout is not a terminal, text on a terminal' do
      expect(described_class.resolve_format(:auto, environment: 'development', io: tty)).to eq(:text)
      expect(described_class.resolve_format(:auto, environment: 'development', io: pipe)).to eq(:json)
      expect(described_class.resolve_format(:auto, environment: 'production', io: tty)).to eq(:json)
    end
  end
end
