# frozen_string_literal: true

require 'tmpdir'
require 'fileutils'
require 'hyperion/config'
require 'hyperion/dsl'

RSpec.describe Hyperion::Config do
  # Every example runs in an empty temporary directory so the default config/hyperion.rb
  # lookup never sees the repository's files.
  around do |example|
    Dir.mktmpdir('hyperion-config') do |dir|
      Dir.chdir(dir) { example.run }
    end
  end

  let(:warnings) { [] }
  let(:warn) { ->(message) { warnings << message } }

  def write_config(body, path = 'config/hyperion.rb')
    FileUtils.mkdir_p(File.dirname(path))
    File.write(path, body)
    path
  end

  def resolve(cli: {}, env: {}, config_file: nil)
    described_class.resolve(cli: cli, env: env, config_file: config_file, warn: warn)
  end

  describe '.defaults' do
    subject(:config) { described_class.defaults }

    it 'holds every documented default' do
      expect(config.to_h).to eq(
        bind: '127.0.0.1', port: 9292, threads: 5, workers: 1, environment: 'development',
        rackup: 'config.ru', idle_keepalive: 5, graceful_timeout: 30, log_level: :info,
        log_format: :auto, log_requests: true, log_file: nil,
        max_body_bytes: 1_073_741_824, max_header_bytes: 65_536, max_headers: 100, max_uri_bytes: 8192,
        max_request_read_seconds: 30, write_timeout: 60, max_pending: 4096, max_in_memory_body_bytes: 131_072,
        preload_static: [],
        preload_app: true,
        worker_model: RUBY_PLATFORM.include?('linux') ? :reuseport : :share, worker_max_rss_mb: nil,
        worker_check_interval: 5, worker_boot_timeout: 60, io_uring: :off, cpu_scheduling: :batch,
        admin_token: nil, admin_token_file: nil, admin_listener_port: nil, admin_listener_host: '127.0.0.1',
        tls_cert_path: nil, tls_key_path: nil, tls_handshake_timeout: 10, tls_handshake_rate_limit: nil,
        h2c: true,
        h2_max_concurrent_streams: 128, h2_initial_window_size: 1_048_576, h2_max_frame_size: 16_384,
        h2_max_header_list_size: 65_536, h2_max_total_streams: 1024
      )
      expect(config.tls?).to be(false)
    end

    it 'is frozen, reports every value as :default and has no file or hooks' do
      expect(config).to be_frozen
      expect(config.to_h.keys.map { |name| config.source(name) }.uniq).to eq([:default])
      expect(config.config_file).to be_nil
      expect(config.hooks).to eq({})
      expect(config.listener).to eq([:tcp, '127.0.0.1', 9292])
    end
  end

  describe 'TLS settings' do
    it 'turns TLS on with a certificate and a key' do
      config = described_class.resolve(cli: { tls_cert_path: 'c.pem', tls_key_path: 'k.pem' }, env: {})
      expect(config.tls?).to be(true)
      expect([config.tls_cert_path, config.tls_key_path]).to eq(%w[c.pem k.pem])
    end

    it 'refuses a certificate without a key and a key without a certificate' do
      expect { described_class.resolve(cli: { tls_cert_path: 'c.pem' }, env: {}) }
        .to raise_error(Hyperion::ConfigError, 'tls_cert_path (from cli) needs tls_key_path too')
      expect { described_class.resolve(cli: {}, env: { 'HYPERION_TLS_KEY_PATH' => 'k.pem' }) }
        .to raise_error(Hyperion::ConfigError, 'tls_key_path (from env) needs tls_cert_path too')
    end

    it 'refuses io_uring on with TLS' do
      expect do
        described_class.resolve(cli: { tls_cert_path: 'c.pem', tls_key_path: 'k.pem', io_uring: 'on' }, env: {})
      end.to raise_error(Hyperion::ConfigError, /io_uring on \(from cli\) cannot serve TLS/)
    end

    it 'takes a positive handshake rate limit and timeout' do
      expect { described_class.resolve(cli: { tls_handshake_rate_limit: '0' }, env: {}) }
        .to raise_error(Hyperion::ConfigError, /tls_handshake_rate_limit/)
      expect { described_class.resolve(cli: { tls_handshake_timeout: '0' }, env: {}) }
        .to raise_error(Hyperion::ConfigError, /tls_handshake_timeout/)
    end
  end

  describe '.resolve' do
    it 'returns defaults when nothing is given' do
      config = resolve
      expect(config.to_h).to eq(described_class.defaults.to_h)
      expect(config.config_file).to be_nil
    end

    it 'returns a deeply frozen config' do
      config = resolve(cli: { bind: '0.0.0.0' })
      expect(config).to be_frozen
      expect(config.bind).to be_frozen
      expect(config.listener).to be_frozen
      expect(config.hooks).to be_frozen
      expect { config.instance_variable_set(:@x, 1) }.to raise_error(FrozenError)
    end

    it 'is not constructible directly' do
      expect { described_class.new({}, {}, nil, {}) }.to raise_error(NoMethodError)
    end

    describe 'precedence: cli > env > file > default' do
      before do
        write_config(<<~RUBY)
          port 3000
          threads 8
          environment 'staging'
          idle_keepalive 7
          log_level :debug
        RUBY
      end

      let(:env) { { 'HYPERION_PORT' => '4000', 'HYPERION_THREADS' => '12', 'HYPERION_IDLE_KEEPALIVE' => '9' } }

      it 'takes each setting from the highest layer that sets it' do
        config = resolve(cli: { port: '5000' }, env: env)

        expect([config.port, config.source(:port)]).to eq([5000, :cli])
        expect([config.threads, config.source(:threads)]).to eq([12, :env])
        expect([config.idle_keepalive, config.source(:idle_keepalive)]).to eq([9, :env])
        expect([config.environment, config.source(:environment)]).to eq(['staging', :file])
        expect([config.log_level, config.source(:log_level)]).to eq([:debug, :file])
        expect([config.graceful_timeout, config.source(:graceful_timeout)]).to eq([30, :default])
        expect(config.config_file).to eq(File.expand_path('config/hyperion.rb'))
      end

      it 'lets the CLI beat env and file for every layer at once' do
        config = resolve(cli: { threads: 2, idle_keepalive: '1.5', log_level: 'warn', environment: 'production' }, env: env)
        expect(config.to_h).to include(threads: 2, idle_keepalive: 1.5, log_level: :warn, environment: 'production')
        expect(%i[threads idle_keepalive log_level environment].map { |name| config.source(name) }.uniq).to eq([:cli])
      end

      it 'falls back to the file when env is absent' do
        config = resolve
        expect(config.to_h).to include(port: 3000, threads: 8, idle_keepalive: 7)
        expect(config.source(:threads)).to eq(:file)
      end
    end

    describe 'environment' do
      it 'prefers HYPERION_ENVIRONMENT, then RACK_ENV, then RAILS_ENV' do
        all = { 'HYPERION_ENVIRONMENT' => 'h', 'RACK_ENV' => 'rack', 'RAILS_ENV' => 'rails' }
        expect(resolve(env: all).environment).to eq('h')
        expect(resolve(env: all.except('HYPERION_ENVIRONMENT')).environment).to eq('rack')
        expect(resolve(env: { 'RAILS_ENV' => 'rails' }).environment).to eq('rails')
        expect(resolve(env: {}).environment).to eq('development')
      end

      it 'lets RACK_ENV beat the config file and -e beat RACK_ENV' do
        write_config("environment 'staging'\n")
        expect(resolve(env: { 'RACK_ENV' => 'production' }).environment).to eq('production')
        expect(resolve(cli: { environment: 'test' }, env: { 'RACK_ENV' => 'production' }).environment).to eq('test')
      end
    end

    describe 'io_uring' do
      it 'reads HYPERION_IO_URING and accepts only off, auto and on' do
        expect(resolve(env: { 'HYPERION_IO_URING' => 'Auto' }).io_uring).to eq(:auto)
        expect(resolve(cli: { io_uring: 'on' }).io_uring).to eq(:on)
        expect { resolve(cli: { io_uring: 'sometimes' }) }
          .to raise_error(Hyperion::ConfigError, /io_uring .*one of off, auto, on/)
      end
    end

    describe 'port' do
      it 'prefers HYPERION_PORT over PORT' do
        expect(resolve(env: { 'HYPERION_PORT' => '4000', 'PORT' => '5000' }).port).to eq(4000)
        expect(resolve(env: { 'PORT' => '5000' }).port).to eq(5000)
      end

      it 'falls through to PORT when HYPERION_PORT is invalid' do
        config = resolve(env: { 'HYPERION_PORT' => 'abc', 'PORT' => '5000' })
        expect(config.port).to eq(5000)
        expect(warnings.join).to include('HYPERION_PORT')
      end
    end

    describe 'bad environment variables' do
      it 'warns about each one and keeps the lower layer' do
        write_config("threads 8\n")
        config = resolve(env: { 'HYPERION_PORT' => 'abc', 'HYPERION_THREADS' => '-1', 'HYPERION_LOG_LEVEL' => 'loud',
                                'HYPERION_IDLE_KEEPALIVE' => '0', 'HYPERION_BIND' => 'ssl://x' })
        expect(config.port).to eq(9292)
        expect(config.source(:port)).to eq(:default)
        expect(config.threads).to eq(8)
        expect(config.log_level).to eq(:info)
        expect(config.idle_keepalive).to eq(5)
        expect(config.bind).to eq('127.0.0.1')
        expect(warnings.size).to eq(5)
        expect(warnings.find { |w| w.include?('HYPERION_PORT') }).to include('"abc"', 'port', 'ignoring')
      end

      it 'ignores empty variables silently' do
        expect(resolve(env: { 'HYPERION_PORT' => '', 'PORT' => ' ' }).port).to eq(9292)
        expect(warnings).to be_empty
      end

      it 'reports through a logger-like object too' do
        logger = Class.new do
          attr_reader :messages

          def initialize
            @messages = []
          end

          def warn(message)
            @messages << message
          end
        end.new
        described_class.resolve(env: { 'HYPERION_THREADS' => 'many' }, warn: logger)
        expect(logger.messages.join).to include('HYPERION_THREADS')
      end

      it 'writes to $stderr by default' do
        expect { described_class.resolve(env: { 'HYPERION_PORT' => 'abc' }) }.to output(/HYPERION_PORT/).to_stderr
      end
    end

    describe 'bad CLI values' do
      {
        port: ['abc', '70000', '-1', '3.5', ''],
        threads: ['-1', 'x', 2.5],
        idle_keepalive: ['0', '-1', 'soon', 'Infinity'],
        graceful_timeout: ['-1', 'never'],
        log_level: ['loud', 3],
        max_body_bytes: ['0', '1e3'],
        max_header_bytes: ['0'],
        bind: ['', 'ssl://0.0.0.0:443', 'tcp://0.0.0.0:99999', 'a b'],
        environment: ['', '   '],
        rackup: ['']
      }.each do |name, values|
        values.each do |value|
          it "rejects #{name} = #{value.inspect} naming the setting and the value" do
            expect { resolve(cli: { name => value }) }
              .to raise_error(Hyperion::ConfigError) { |error| expect(error.message).to include(name.to_s, value.inspect) }
          end
        end
      end

      it 'rejects unknown settings' do
        expect { resolve(cli: { colour: 'blue' }) }.to raise_error(Hyperion::ConfigError, /colour/)
      end

      it 'ignores nil values so callers can pass optional flags through' do
        expect(resolve(cli: { port: nil }).source(:port)).to eq(:default)
      end
    end

    describe 'coercion' do
      it 'accepts typed values and their string forms alike' do
        expect(resolve(cli: { port: 3000 }).port).to eq(3000)
        expect(resolve(cli: { port: ' 3000 ' }).port).to eq(3000)
        expect(resolve(cli: { threads: '0' }).threads).to eq(0)
        expect(resolve(cli: { graceful_timeout: '0' }).graceful_timeout).to eq(0)
        expect(resolve(cli: { graceful_timeout: '2.5' }).graceful_timeout).to eq(2.5)
        expect(resolve(cli: { idle_keepalive: 0.25 }).idle_keepalive).to eq(0.25)
        expect(resolve(cli: { log_level: 'WARN' }).log_level).to eq(:warn)
        expect(resolve(cli: { max_body_bytes: '1_000' }).max_body_bytes).to eq(1000)
        expect(resolve(cli: { thread_count: '3' }).threads).to eq(3)
      end
    end

    describe 'cluster settings' do
      it 'accepts any worker count, 0 meaning one per CPU' do
        expect(resolve(cli: { workers: '4' }).workers).to eq(4)
        expect(resolve(env: { 'HYPERION_WORKERS' => '0' }).workers).to eq(0)
        write_config("workers 2\n")
        expect(resolve.workers).to eq(2)
        expect { resolve(cli: { workers: '-1' }) }.to raise_error(Hyperion::ConfigError, /workers/)
      end

      it 'reads preload_app as a boolean from every source' do
        expect(resolve(cli: { preload_app: false }).preload_app).to be(false)
        expect(resolve(env: { 'HYPERION_PRELOAD_APP' => 'off' }).preload_app).to be(false)
        expect(resolve(env: { 'HYPERION_PRELOAD_APP' => 'yes' }).preload_app).to be(true)
        write_config("preload_app false\n")
        expect(resolve.preload_app).to be(false)
        write_config("preload_app 'maybe'\n")
        expect { resolve }.to raise_error(Hyperion::ConfigError, /preload_app .*expected true or false/)
      end

      it 'reads worker_model share or reuseport' do
        expect(resolve(env: { 'HYPERION_WORKER_MODEL' => 'share' }).worker_model).to eq(:share)
        expect(resolve(cli: { worker_model: 'REUSEPORT' }).worker_model).to eq(:reuseport) if RUBY_PLATFORM.include?('linux')
        expect { resolve(cli: { worker_model: 'fork' }) }.to raise_error(Hyperion::ConfigError, /one of reuseport, share/)
      end

      it 'leaves worker_max_rss_mb unset by default and takes a positive integer' do
        expect(resolve.worker_max_rss_mb).to be_nil
        expect(resolve(cli: { worker_max_rss_mb: '512' }).worker_max_rss_mb).to eq(512)
        expect { resolve(cli: { worker_max_rss_mb: '0' }) }.to raise_error(Hyperion::ConfigError, /worker_max_rss_mb/)
      end
    end
  end

  describe '#listener' do
    def listener(bind, port: nil)
      cli = { bind: bind }
      cli[:port] = port if port
      resolve(cli: cli).listener
    end

    it 'combines a plain host with the port setting' do
      expect(listener('0.0.0.0', port: 3000)).to eq([:tcp, '0.0.0.0', 3000])
      expect(listener('localhost')).to eq([:tcp, 'localhost', 9292])
    end

    it 'lets a port inside the bind win over the port setting' do
      expect(listener('tcp://0.0.0.0:8080', port: 3000)).to eq([:tcp, '0.0.0.0', 8080])
      expect(listener('127.0.0.1:8081', port: 3000)).to eq([:tcp, '127.0.0.1', 8081])
    end

    it 'uses the port setting for tcp:// without a port' do
      expect(listener('tcp://example.test', port: 3000)).to eq([:tcp, 'example.test', 3000])
    end

    it 'understands every IPv6 form and strips brackets' do
      expect(listener('::1')).to eq([:tcp, '::1', 9292])
      expect(listener('::')).to eq([:tcp, '::', 9292])
      expect(listener('[::1]', port: 3000)).to eq([:tcp, '::1', 3000])
      expect(listener('[::1]:4000', port: 3000)).to eq([:tcp, '::1', 4000])
      expect(listener('tcp://[::1]:9292', port: 3000)).to eq([:tcp, '::1', 9292])
      expect(listener('tcp://[fe80::1%eth0]')).to eq([:tcp, 'fe80::1%eth0', 9292])
      expect(listener('2001:db8::1')).to eq([:tcp, '2001:db8::1', 9292])
    end

    it 'recognises unix sockets' do
      expect(listener('unix:///tmp/hyperion.sock', port: 3000)).to eq([:unix, '/tmp/hyperion.sock'])
      expect(listener('unix://tmp/relative.sock')).to eq([:unix, 'tmp/relative.sock'])
    end

    it 'rejects what it cannot listen on' do
      ['unix://', 'tcp://', 'http://x', 'tcp://[::1', 'tcp://host:port', '[::1]:70000'].each do |bind|
        expect { listener(bind) }.to raise_error(Hyperion::ConfigError, /bind/), bind
      end
    end

    it 'applies the bind from the config file too' do
      write_config("bind 'tcp://[::1]:7000'\nport 1\n")
      expect(resolve.listener).to eq([:tcp, '::1', 7000])
    end
  end

  describe 'config file lookup' do
    it 'loads config/hyperion.rb from the working directory when present' do
      write_config("port 1234\n")
      config = resolve
      expect(config.port).to eq(1234)
      expect(config.config_file).to eq(File.expand_path('config/hyperion.rb'))
    end

    it 'loads an explicit file instead of the default one' do
      write_config("port 1234\n")
      path = write_config("port 4321\n", 'other/server.rb')
      config = resolve(config_file: path)
      expect(config.port).to eq(4321)
      expect(config.config_file).to eq(File.expand_path(path))
    end

    it 'takes io_uring in cluster mode too: each worker runs its own ring' do
      expect(resolve(cli: { workers: '2', io_uring: 'on' }).io_uring).to eq(:on)
      expect(resolve(cli: { workers: '2', io_uring: 'auto' }).io_uring).to eq(:auto)
    end

    it 'raises when an explicit file does not exist' do
      expect { resolve(config_file: 'missing.rb') }.to raise_error(Hyperion::ConfigError, /config file not found: missing.rb/)
    end
  end

  describe 'config file DSL' do
    it 'has one method per setting, last one wins' do
      write_config(<<~RUBY)
        bind '0.0.0.0'
        port 3000
        port 3001
        threads 10
        workers 1
        environment 'production'
        rackup 'app.ru'
        idle_keepalive 2.5
        graceful_timeout 0
        log_level 'error'
        log_format :json
        log_requests false
        log_file 'log/server.log'
        max_body_bytes 1024
        max_header_bytes 4096
        max_headers 20
        max_uri_bytes 512
        max_request_read_seconds 1.5
        write_timeout 9
        max_pending 16
        max_in_memory_body_bytes 0
        preload_static 'public'
        preload_static 'docs', immutable: false
        preload_app false
        worker_model :share
        worker_max_rss_mb 300
        worker_check_interval 1
        worker_boot_timeout 10
        io_uring :auto
        cpu_scheduling :normal
        admin_token 'dsl-admin-token-0123456789'
        admin_listener_port 9293
        admin_listener_host 'localhost'
        tls_cert_path 'config/cert.pem'
        tls_key_path 'config/key.pem'
        tls_handshake_timeout 4
        tls_handshake_rate_limit 100
      RUBY
      expect(resolve.to_h).to eq(
        bind: '0.0.0.0', port: 3001, threads: 10, workers: 1, environment: 'production', rackup: 'app.ru',
        idle_keepalive: 2.5, graceful_timeout: 0, log_level: :error, log_format: :json, log_requests: false,
        log_file: 'log/server.log', max_body_bytes: 1024, max_header_bytes: 4096,
        max_headers: 20, max_uri_bytes: 512, max_request_read_seconds: 1.5, write_timeout: 9, max_pending: 16,
        max_in_memory_body_bytes: 0,
        preload_static: [{ dir: 'public', immutable: true }, { dir: 'docs', immutable: false }],
        preload_app: false, worker_model: :share, worker_max_rss_mb: 300, worker_check_interval: 1,
        worker_boot_timeout: 10, io_uring: :auto, cpu_scheduling: :normal, admin_token: 'dsl-admin-token-0123456789',
        admin_token_file: nil, admin_listener_port: 9293, admin_listener_host: 'localhost',
        tls_cert_path: 'config/cert.pem', tls_key_path: 'config/key.pem',
        tls_handshake_timeout: 4, tls_handshake_rate_limit: 100,
        h2c: true, h2_max_concurrent_streams: 128,
        h2_initial_window_size: 1_048_576, h2_max_frame_size: 16_384, h2_max_header_list_size: 65_536,
        h2_max_total_streams: 1024
      )
    end

    it 'groups the HTTP/2 settings in an h2 block' do
      write_config(<<~RUBY)
        h2 do
          max_concurrent_streams 64
          initial_window_size 65_535
          max_total_streams :unbounded
        end
        h2_max_frame_size 32_768
      RUBY
      config = resolve
      expect([config.h2_max_concurrent_streams, config.h2_initial_window_size, config.h2_max_total_streams,
              config.h2_max_frame_size]).to eq([64, 65_535, :unbounded, 32_768])
      expect(config.source(:h2_max_concurrent_streams)).to eq(:file)
    end

    it 'rejects unknown names and bad values inside the h2 block' do
      write_config("h2 do\n  max_streams 3\nend\n")
      expect { resolve }.to raise_error(Hyperion::ConfigError, /unknown setting `max_streams' in h2 block.*hyperion\.rb:2/)
      write_config("h2 do\n  max_frame_size 100\nend\n")
      expect { resolve }.to raise_error(Hyperion::ConfigError, /h2_max_frame_size/)
      write_config("h2 64\n")
      expect { resolve }.to raise_error(Hyperion::ConfigError, /h2 takes a block/)
    end

    it 'takes h2_max_total_streams as a count or unbounded from flags and the environment' do
      expect(resolve(cli: { h2_max_total_streams: 'unbounded' }).h2_max_total_streams).to eq(:unbounded)
      expect(resolve(env: { 'HYPERION_H2_MAX_TOTAL_STREAMS' => '10' }).h2_max_total_streams).to eq(10)
      expect { resolve(cli: { h2_max_total_streams: '0' }) }.to raise_error(Hyperion::ConfigError, /or unbounded/)
    end

    it 'accepts thread_count as an alias of threads' do
      write_config("thread_count 12\n")
      config = resolve
      expect(config.threads).to eq(12)
      expect(config.source(:threads)).to eq(:file)
    end

    it 'allows ordinary Ruby such as ENV and conditionals' do
      write_config(<<~RUBY)
        port Integer(ENV.fetch('HYPERION_SPEC_UNSET_VARIABLE', '3100'))
        threads 2 if true
      RUBY
      expect(resolve.to_h).to include(port: 3100, threads: 2)
    end

    it 'rejects unknown settings with file and line' do
      write_config("port 3000\n\nfoo 1\n")
      expect { resolve }.to raise_error(Hyperion::ConfigError, "unknown setting `foo' in config/hyperion.rb:3")
    end

    it 'rejects unknown bare names with file and line' do
      write_config("# a comment\nthreds\n")
      expect { resolve }.to raise_error(Hyperion::ConfigError, "unknown setting `threds' in config/hyperion.rb:2")
    end

    it 'rejects bad values naming setting, value, file and line' do
      write_config("threads 4\nport 'abc'\n")
      expect { resolve }.to raise_error(Hyperion::ConfigError) { |error|
        expect(error.message).to include('port', '"abc"', 'config/hyperion.rb:2')
      }
    end

    it 'rejects a wrong number of values (e.g. Puma-style threads min, max)' do
      path = write_config("threads 0, 16\n", 'puma_style.rb')
      expect { resolve(config_file: path) }.to raise_error(Hyperion::ConfigError, /threads takes exactly one value, got 2 in puma_style.rb:1/)
    end

    it 'wraps Ruby errors in the file with their location' do
      write_config("port 3000\nraise 'boom'\n")
      expect { resolve }.to raise_error(Hyperion::ConfigError, %r{config/hyperion.rb:2: boom})
    end

    it 'wraps syntax errors' do
      write_config("port 3000\nthreads (\n")
      expect { resolve }.to raise_error(Hyperion::ConfigError, %r{config/hyperion.rb})
    end

    it 'returns no hooks when the file defines none' do
      expect(Hyperion::DSL.load(write_config("port 1\n"))).to eq([{ port: 1 }, {}])
    end

    it 'collects hook blocks in order, several per hook' do
      write_config(<<~RUBY)
        before_fork { :fork }
        on_worker_boot { |index| [:boot1, index] }
        on_worker_boot { |index| [:boot2, index] }
        on_worker_shutdown { |index| [:shutdown, index] }
      RUBY
      hooks = resolve.hooks
      expect(hooks.keys).to eq(%i[before_fork on_worker_boot on_worker_shutdown])
      expect(hooks[:before_fork].map(&:call)).to eq([:fork])
      expect(hooks[:on_worker_boot].map { |hook| hook.call(3) }).to eq([[:boot1, 3], [:boot2, 3]])
      expect(hooks[:on_worker_shutdown].first.source_location).to eq(['config/hyperion.rb', 4])
      expect(hooks).to be_frozen
      expect(hooks[:on_worker_boot]).to be_frozen
    end

    it 'requires a block and no value for a hook' do
      write_config("port 1\non_worker_boot\n")
      expect { resolve }.to raise_error(Hyperion::ConfigError, %r{on_worker_boot takes a block and no value, in config/hyperion.rb:2})
      write_config("before_fork(1) { }\n")
      expect { resolve }.to raise_error(Hyperion::ConfigError, /before_fork takes a block/)
    end
  end

  describe 'the settings table' do
    it 'defines a reader and environment variable for every setting' do
      config = described_class.defaults
      described_class.settings.each_value do |setting|
        expect(config.public_send(setting.name)).to eq(setting.default)
        expect(setting.env_keys.first).to eq("HYPERION_#{setting.name.upcase}")
        expect(setting.doc).not_to be_empty
      end
    end

    it 'is what docs/CONFIGURATION.md shows' do
      doc = File.read(File.expand_path('../docs/CONFIGURATION.md', __dir__))
      table = doc[/<!-- settings:begin[^\n]*-->\n(.*?)<!-- settings:end -->/m, 1]
      expect(table).to eq(described_class.markdown_table)
    end
  end
end
