# frozen_string_literal: true

require 'spec_helper'
require 'fileutils'
require 'json'
require 'open3'
require 'tmpdir'

# TLS end to end with independent clients: curl and `openssl s_client`. The certificates come
# from spec/support/make_test_certs.sh, generated for this run.
RSpec.describe 'TLS', if: RUBY_PLATFORM.include?('linux') do
  before(:all) do
    @certs = Dir.mktmpdir('hyperion-tls-certs')
    system('sh', File.join(ServerHelpers::ROOT, 'spec', 'support', 'make_test_certs.sh'), @certs, exception: true)
  end

  after(:all) { FileUtils.rm_rf(@certs) }

  around do |example|
    Dir.mktmpdir('hyperion-e2e-tls') do |dir|
      @tmp = dir
      example.run
    end
  end

  after do
    stop_started_servers_quickly
    kill_started_process_groups
  end

  def cert(name)
    File.join(@certs, name)
  end

  def ca
    cert('ca.pem')
  end

  def tls_server(*args, cert_file: cert('rsa-chain.pem'), key_file: cert('rsa.key'), env: {})
    start_server('-e', 'production', '--tls-cert', cert_file, '--tls-key', key_file, *args, fixture('tls.ru'),
                 env: env)
  end

  # [status, stdout, stderr] of curl against https://127.0.0.1:PORT/PATH, verifying with the CA.
  def curl(port, path = '/', *options)
    out, err, status = Open3.capture3('curl', '-sS', '-v', '--max-time', '10', '--cacert', ca, *options,
                                      "https://127.0.0.1:#{port}#{path}")
    [status, out, err]
  end

  # The output of `openssl s_client` sending one request for PATH and reading until the
  # server closes, and whether it succeeded.
  def s_client(port, *options, path: '/')
    request = "GET #{path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    out, status = Open3.capture2e('timeout', '15', 'openssl', 's_client', '-connect', "127.0.0.1:#{port}",
                                  '-servername', 'localhost', '-CAfile', ca, '-verify_return_error', '-ign_eof',
                                  *options, stdin_data: request)
    [out, status.success?]
  end

  # The engine counters of a single-process server, over TLS (retried: a rate limit may refuse
  # the connection).
  def stats(port)
    eventually do
      status, out, = curl(port, '/stats')
      JSON.parse(out) if status.success?
    end
  end

  it 'serves over TLS 1.2 and 1.3 with rack.url_scheme https and no hijack' do
    server = tls_server
    expect(server.log).to include("listening on https://127.0.0.1:#{server.port}")
    { '1.2' => %w[--tlsv1.2 --tls-max 1.2], '1.3' => %w[--tlsv1.3] }.each do |version, options|
      status, out, err = curl(server.port, '/', *options)
      expect(status).to be_success, err
      expect(err).to include("SSL connection using TLSv#{version}")
      expect(out).to match(/\Ascheme=https pid=\d+ hijack\?=false hijack=false\z/)
    end
  end

  it 'negotiates h2 by ALPN when offered, and http/1.1 otherwise' do
    server = tls_server
    out, ok = s_client(server.port, '-alpn', 'http/1.1')
    expect(ok).to be(true), out
    expect(out).to include('ALPN protocol: http/1.1')
    expect(out).to include('scheme=https')

    # The server picks h2 (s_client then writes HTTP/1.1 text, which the server refuses).
    out, = s_client(server.port, '-alpn', 'h2,http/1.1')
    expect(out).to include('ALPN protocol: h2')

    # curl offers h2 and http/1.1 by default, and only http/1.1 with --http1.1.
    { [] => 'h2', ['--http1.1'] => 'http/1.1' }.each do |options, protocol|
      status, out, err = curl(server.port, '/', *options)
      expect(status).to be_success, err
      expect(err).to include("ALPN: server accepted #{protocol}")
      expect(out).to start_with('scheme=https')
    end
  end

  it 'refuses TLS 1.1 and TLS 1.0' do
    server = tls_server
    failures = stats(server.port)['tls_handshake_failures']
    %w[-tls1_1 -tls1].each do |flag|
      # The client is allowed the old protocol, so the refusal is the server's: an alert.
      out, ok = s_client(server.port, flag, '-cipher', 'DEFAULT@SECLEVEL=0')
      expect(ok).to be(false)
      expect(out).to match(/alert (handshake failure|protocol version):.*SSL alert number (40|70)/)
    end
    eventually { stats(server.port)['tls_handshake_failures'] == failures + 2 }
  end

  it 'sends file bodies through the TLS stream' do
    path = File.join(@tmp, 'payload')
    content = Random.new(7).bytes(300_000)
    File.binwrite(path, content)
    server = tls_server(env: { 'TLS_FILE' => path })
    out, err, status = Open3.capture3('curl', '-sS', '--cacert', ca, "https://127.0.0.1:#{server.port}/file",
                                      binmode: true)
    expect(status).to be_success, err
    expect(out.b).to eq(content)
  end

  it 'refuses a partial hijack over TLS with a 500 and a log line' do
    server = tls_server
    status, out, err = curl(server.port, '/partial_hijack', '-o', '/dev/null', '-w', '%{http_code}')
    expect(status).to be_success, err
    expect(out).to eq('500')
    expect(server.log).to include('rack.hijack is not available over TLS')
  end

  it 'accepts PKCS#8, PKCS#1 and SEC1 keys' do
    [%w[rsa.pem rsa.key], %w[rsa.pem rsa-pkcs1.key], %w[ec.pem ec-sec1.key], %w[ec.pem ec.key]].each do |crt, key|
      server = tls_server(cert_file: cert(crt), key_file: cert(key))
      status, out, err = curl(server.port)
      expect(status).to be_success, "#{crt} #{key}: #{err}"
      expect(out).to start_with('scheme=https')
      server.stop
    end
  end

  it 'refuses to boot with a clear error for a missing, unreadable or mismatched pair' do
    File.write(File.join(@tmp, 'junk.key'), "not a key\n")
    [
      [cert('missing.pem'), cert('rsa.key'), /cannot read TLS certificate .*missing\.pem/],
      [cert('rsa.pem'), File.join(@tmp, 'junk.key'), /no usable private key in .*junk\.key/],
      [cert('rsa.pem'), cert('ec.key'), /private key .*ec\.key does not belong to the certificate .*rsa\.pem/]
    ].each do |crt, key, message|
      out, status = Open3.capture2e(RbConfig.ruby, ServerHelpers::BIN, '-p', free_port.to_s, '--tls-cert', crt,
                                    '--tls-key', key, fixture('tls.ru'))
      expect(status.exitstatus).to eq(64)
      expect(out).to match(message)
    end
    out, status = Open3.capture2e(RbConfig.ruby, ServerHelpers::BIN, '--tls-cert', cert('rsa.pem'), fixture('tls.ru'))
    expect(status.exitstatus).to eq(64)
    expect(out).to include('tls_cert_path (from cli) needs tls_key_path too')
  end

  it 'closes a client that never completes the handshake and counts it' do
    server = tls_server('--tls-handshake-timeout', '0.5')
    silent = TCPSocket.new('127.0.0.1', server.port)
    expect(silent.wait_readable(10)).to be_truthy
    expect(silent.read_nonblock(16, exception: false)).to be_nil
    silent.close
    # Counted on the I/O thread just after the close the client saw.
    eventually { stats(server.port)['tls_handshake_timeouts'] == 1 }
  end

  it 'closes handshakes over the rate limit and counts them' do
    server = tls_server('--tls-handshake-rate-limit', '1')
    results = Array.new(6) { curl(server.port).first.success? }
    refused = results.count(false)
    expect(refused).to be >= 1
    counted = stats(server.port)
    # /stats itself may have been refused a few times before it got through.
    expect(counted['tls_handshakes_rate_limited']).to be >= refused
    expect(server.log).to include('TLS handshake refused').and include('reason=tls_handshake_rate_limit')
  end

  it 'reloads the certificate on USR2 and keeps the old one when the new is unusable' do
    live_cert = File.join(@tmp, 'live.pem')
    live_key = File.join(@tmp, 'live.key')
    FileUtils.cp(cert('rsa.pem'), live_cert)
    FileUtils.cp(cert('rsa.key'), live_key)
    server = tls_server(cert_file: live_cert, key_file: live_key)
    served = -> { s_client(server.port).first[/-----BEGIN CERTIFICATE-----.*?-----END CERTIFICATE-----\n/m] }
    expect(served.call).to eq(File.read(cert('rsa.pem')))

    FileUtils.cp(cert('ec.pem'), live_cert)
    FileUtils.cp(cert('ec.key'), live_key)
    server.signal('USR2')
    eventually { server.log.include?('TLS certificate reloaded') }
    expect(served.call).to eq(File.read(cert('ec.pem')))

    FileUtils.cp(cert('rsa.pem'), live_cert)
    server.signal('USR2')
    eventually { server.log.include?('TLS certificate not reloaded, keeping the current one') }
    expect(server.log).to include('does not belong to the certificate')
    expect(served.call).to eq(File.read(cert('ec.pem')))
    expect(server).to be_alive
  end

  context 'in a cluster (-w 2)' do
    # Resumes the session in `session` until two different workers have answered; returns
    # [pids that resumed, whether every connection resumed].
    def resume_on_two_workers(port, session)
      pids = {}
      20.times do
        out, ok = s_client(port, '-sess_in', session)
        expect(ok).to be(true), out
        pid = out[/pid=(\d+)/, 1]
        pids[pid] = out.include?('Reused, TLSv1.3')
        break if pids.size == 2
      end
      pids
    end

    it 'resumes a session on any worker, across one USR2 rotation but not two, and reloads on USR2' do
      server = tls_server('-w', '2')
      eventually(timeout: 20) { server.log.scan(/worker \d booted/).size >= 2 }
      session = File.join(@tmp, 'session.pem')
      out, ok = s_client(server.port, '-sess_out', session)
      expect(ok).to be(true), out
      expect(out).to include('New, TLSv1.3')

      pids = resume_on_two_workers(server.port, session)
      expect(pids.size).to eq(2), "only one worker answered: #{pids}"
      expect(pids.values).to all(be(true))

      server.signal('USR2')
      eventually { server.log.include?('session-ticket key generation 1') }
      eventually { server.log.scan('TLS certificate reloaded').size >= 2 }
      pids = resume_on_two_workers(server.port, session)
      expect(pids.size).to eq(2)
      expect(pids.values).to all(be(true))

      server.signal('USR2')
      eventually { server.log.include?('session-ticket key generation 2') }
      out, ok = s_client(server.port, '-sess_in', session)
      expect(ok).to be(true), out
      expect(out).to include('New, TLSv1.3')
    end
  end
end
