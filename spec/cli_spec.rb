# frozen_string_literal: true

require 'stringio'
require 'tmpdir'
require 'fileutils'
require 'hyperion/cli'

RSpec.describe Hyperion::CLI do
  around do |example|
    Dir.mktmpdir('hyperion-cli') do |dir|
      Dir.chdir(dir) { example.run }
    end
  end

  let(:stdout) { StringIO.new }
  let(:stderr) { StringIO.new }
  let(:env) { {} }

  def cli(*argv)
    described_class.new(argv, env: env, stdout: stdout, stderr: stderr)
  end

  describe '#parse' do
    it 'returns frozen defaults for no arguments' do
      config = cli.parse
      expect(config).to be_a(Hyperion::Config).and be_frozen
      expect(config.to_h).to eq(Hyperion::Config.defaults.to_h)
    end

    it 'maps every flag to its setting' do
      File.write('token', 'cli-admin-token-0123456789')
      File.chmod(0o600, 'token')
      config = cli('-b', '0.0.0.0', '-p', '3000', '-t', '0', '-w', '1', '-e', 'production',
                   '--idle-keepalive', '2.5', '--graceful-timeout', '10', '--log-level', 'debug',
                   '--log-format', 'text', '--no-log-requests', '--log-file', 'server.log',
                   '--max-body-bytes', '1024', '--max-header-bytes', '2048', '--max-headers', '10',
                   '--max-uri-bytes', '100', '--max-request-read-seconds', '2', '--write-timeout', '3',
                   '--max-pending', '8', '--max-in-memory-body-bytes', '64',
                   '--preload-static', 'public', '--preload-static', 'assets', '--no-preload-app',
                   '--worker-model', 'share', '--worker-max-rss-mb', '256', '--worker-check-interval', '2',
                   '--worker-boot-timeout', '20', '--io-uring', 'auto', '--cpu-scheduling', 'normal', '--admin-token-file', 'token',
                   '--admin-listener-port', '9293', '--admin-listener-host', '::1',
                   '--tls-cert', 'c.pem', '--tls-key', 'k.pem',
                   '--tls-handshake-timeout', '3', '--tls-handshake-rate-limit', '50',
                   '--no-h2c',
                   '--h2-max-concurrent-streams', '10', '--h2-initial-window-size', '65535',
                   '--h2-max-frame-size', '32768', '--h2-max-header-list-size', '8192',
                   '--h2-max-total-streams', 'unbounded', 'app.ru').parse
      expect(config.to_h).to eq(
        bind: '0.0.0.0', port: 3000, threads: 0, workers: 1, environment: 'production', rackup: 'app.ru',
        idle_keepalive: 2.5, graceful_timeout: 10, log_level: :debug, log_format: :text, log_requests: false,
        log_file: 'server.log', max_body_bytes: 1024, max_header_bytes: 2048,
        max_headers: 10, max_uri_bytes: 100, max_request_read_seconds: 2, write_timeout: 3, max_pending: 8,
        max_in_memory_body_bytes: 64,
        preload_static: [{ dir: 'public', immutable: true }, { dir: 'assets', immutable: true }],
        preload_app: false, worker_model: :share, worker_max_rss_mb: 256, worker_check_interval: 2,
        worker_boot_timeout: 20, io_uring: :auto, cpu_scheduling: :normal, admin_token: 'cli-admin-token-0123456789',
        admin_token_file: 'token', admin_listener_port: 9293, admin_listener_host: '::1',
        tls_cert_path: 'c.pem', tls_key_path: 'k.pem', tls_handshake_timeout: 3, tls_handshake_rate_limit: 50,
        h2c: false, h2_max_concurrent_streams: 10,
        h2_initial_window_size: 65_535, h2_max_frame_size: 32_768, h2_max_header_list_size: 8192,
        h2_max_total_streams: :unbounded
      )
      expect(config.to_h.keys.map { |name| config.source(name) }.uniq).to eq([:cli])
    end

    it 'accepts long forms with =' do
      config = cli('--bind=unix:///tmp/h.sock', '--port=1', '--threads=3').parse
      expect(config.listener).to eq([:unix, '/tmp/h.sock'])
      expect(config.threads).to eq(3)
    end

    context 'with environment variables and a config file' do
      let(:env) { { 'HYPERION_THREADS' => '7', 'PORT' => '4000' } }

      it 'lets flags win over the environment, and the environment over the file' do
        File.write('server.rb', "threads 2\nport 2000\ngraceful_timeout 3\n")
        config = cli('-C', 'server.rb', '-p', '5000').parse
        expect(config.to_h).to include(port: 5000, threads: 7, graceful_timeout: 3)
        expect(config.config_file).to eq(File.expand_path('server.rb'))
      end

      it 'picks up config/hyperion.rb by default' do
        FileUtils.mkdir_p('config')
        File.write('config/hyperion.rb', "max_header_bytes 100\n")
        expect(cli.parse.max_header_bytes).to eq(100)
      end
    end

    it 'warns about bad environment variables on stderr and carries on' do
      env['HYPERION_PORT'] = 'abc'
      expect(cli.parse.port).to eq(9292)
      expect(stderr.string).to start_with('hyperion: ').and include('HYPERION_PORT')
    end

    it 'raises ConfigError for bad values, naming setting and value' do
      expect { cli('-p', 'abc').parse }.to raise_error(Hyperion::ConfigError, /"abc" for port \(--port\)/)
      expect { cli('-t', '-1').parse }.to raise_error(Hyperion::ConfigError, /threads/)
      expect { cli('--log-level', 'loud').parse }.to raise_error(Hyperion::ConfigError, /log_level/)
    end

    it 'turns OptionParser errors into ConfigError' do
      expect { cli('--frobnicate').parse }.to raise_error(Hyperion::ConfigError, /invalid option: --frobnicate/)
      expect { cli('-p').parse }.to raise_error(Hyperion::ConfigError, /missing argument: -p/)
    end

    it 'rejects more than one rackup file' do
      expect { cli('a.ru', 'b.ru').parse }.to raise_error(Hyperion::ConfigError, /at most one rackup/)
    end

    it 'raises for a missing -C file' do
      expect { cli('-C', 'nope.rb').parse }.to raise_error(Hyperion::ConfigError, /config file not found/)
    end

    it 'takes --preload-app and --no-preload-app as a switch' do
      expect(cli('--preload-app').parse.preload_app).to be(true)
      expect(cli('--no-preload-app').parse.preload_app).to be(false)
      expect(cli('-w', '4').parse.workers).to eq(4)
    end
  end

  describe '--version' do
    %w[-v --version].each do |flag|
      it "#{flag} prints the version to stdout and exits 0" do
        expect(cli(flag).run).to eq(0)
        expect(stdout.string).to eq("hyperion-rb #{Hyperion::VERSION}\n")
        expect(stdout.string).to eq("hyperion-rb 0.1.0\n")
        expect(stderr.string).to be_empty
      end
    end

    it 'does not resolve the configuration' do
      expect(cli('-w', '9', '-v').run).to eq(0)
    end
  end

  describe '--help' do
    %w[-h --help].each do |flag|
      it "#{flag} prints usage with every flag and its default, exit 0" do
        expect(cli(flag).run).to eq(0)
        help = stdout.string
        expect(help).to start_with('Usage: hyperion [options] [rackup]')
        %w[-b --bind -p --port -t --threads -w --workers -C --config -e --environment --idle-keepalive
           --graceful-timeout --log-level --max-body-bytes --max-header-bytes -v --version -h --help].each do |option|
          expect(help).to match(/(^|\s)#{Regexp.escape(option)}\b/), option
        end
        ['(default: 127.0.0.1)', '(default: 9292)', '(default: 5)', '(default: 1)', '(default: development)',
         '(default: 30)', '(default: info)', '(default: 1073741824)', '(default: 65536)',
         'rackup defaults to config.ru'].each do |default|
          expect(help).to include(default)
        end
      end
    end
  end

  describe '#run' do
    it 'prints the error without a backtrace and returns 64 for an unknown flag' do
      expect(cli('--nope').run).to eq(64)
      expect(stderr.string).to start_with("hyperion: invalid option: --nope\n")
      expect(stderr.string).to include('--help')
      expect(stderr.string).not_to match(/\.rb:\d+/)
      expect(stdout.string).to be_empty
    end

    it 'returns 64 for a bad value' do
      expect(cli('-p', '99999').run).to eq(64)
      expect(stderr.string).to start_with('hyperion: invalid value "99999" for port')
    end

    it 'returns 64 for an unknown setting in the config file' do
      File.write('bad.rb', "port 1\nfoo 2\n")
      expect(cli('-C', 'bad.rb').run).to eq(64)
      expect(stderr.string).to include("unknown setting `foo' in bad.rb:2")
    end

    context 'with a launcher' do
      let(:launched) { [] }
      let(:outcome) { -> { 0 } }
      let(:launcher) do
        record = launched
        result = outcome
        Class.new do
          define_method(:initialize) { |config, logger:| record << [config, logger] }
          define_method(:run) { result.call }
        end
      end

      before do
        stub_const('Hyperion::Launcher', launcher)
        allow_any_instance_of(described_class).to receive(:require).with('hyperion/launcher').and_return(true)
      end

      it 'hands the config and a logger at the configured level to the launcher' do
        expect(cli('-p', '3000', '--log-level', 'warn').run).to eq(0)
        config, logger = launched.fetch(0)
        expect(config.port).to eq(3000)
        expect(logger).to be_a(Hyperion::Logger)
        expect(logger.level).to eq(:warn)
      end

      context 'when the launcher returns a status' do
        let(:outcome) { -> { 3 } }

        it 'passes it through' do
          expect(cli.run).to eq(3)
        end
      end

      context 'when the launcher rejects the configuration' do
        let(:outcome) { -> { raise Hyperion::ConfigError, 'rackup file not found: config.ru' } }

        it 'returns 64' do
          expect(cli.run).to eq(64)
          expect(stderr.string).to start_with('hyperion: rackup file not found: config.ru')
        end
      end
    end
  end
end
