# frozen_string_literal: true

require 'spec_helper'
require 'json'
require 'net/http'
require 'set'
require 'tmpdir'

# Metrics (Hyperion.stats, the Prometheus text, custom counters, one scrape for a whole
# cluster) and access logs (format, fields, switch, HUP reopening log_file), end to end.
RSpec.describe 'Observability' do
  def get(port, path, headers = {})
    Net::HTTP.start('127.0.0.1', port) { |http| http.get(path, headers) }
  end

  def access_lines(server)
    server.log.lines.filter_map do |line|
      entry = JSON.parse(line)
      entry if entry['message'] == 'request'
    rescue JSON::ParserError
      nil
    end
  end

  # name => [[labels, value], ...] of a Prometheus text page.
  def samples(text)
    text.lines.grep_v(/\A#/).each_with_object(Hash.new { |h, k| h[k] = [] }) do |line, out|
      name, labels, value = line.match(/\A([a-z_][a-z0-9_]*)(?:\{(.*)\})? (\S+)\n?\z/).captures
      out[name] << [labels.to_s.scan(/(\w+)="((?:[^"\\]|\\.)*)"/).to_h, Float(value)]
    end
  end

  describe 'in one process' do
    it 'counts requests, responses by status, dispatch kinds, app errors and bytes in Hyperion.stats' do
      server = start_server(fixture('observability.ru'), '--no-log-requests')
      %w[/users/1 /users/2 /static /nope /boom].each { |path| get(server.port, path) }
      stats = JSON.parse(get(server.port, '/stats').body)
      expect(stats.keys).to include('connections_accepted', 'connections_active', 'requests_total',
                                    'requests_in_flight', 'responses', 'parse_errors', 'rejections',
                                    'app_errors', 'read_timeouts', 'rejected', 'bytes_written',
                                    'dispatch_rack', 'dispatch_static', 'dispatch_handler',
                                    'dispatch_page_cache')
      expect(stats['requests_total']).to eq(6)
      expect(stats['requests_in_flight']).to eq(1) # the /stats request itself
      expect(stats['responses']).to include('200' => 3, '404' => 1, '500' => 1)
      expect(stats['dispatch_static']).to eq(1)
      expect(stats['dispatch_rack']).to eq(5)
      expect(stats['app_errors']).to eq(1)
      expect(stats['bytes_written']).to be > 5 * 60
      expect(stats['worker_id']).to eq(0)
    end

    it 'serves Prometheus text with HELP/TYPE lines, the duration histogram by templated path and custom counters' do
      server = start_server(fixture('observability.ru'), '--no-log-requests')
      %w[/users/1 /users/22 /count /count].each { |path| get(server.port, path) }
      raw_request(server.port, "BAD\r\n\r\n")
      text = get(server.port, '/metrics').body
      expect(text).to include("# HELP hyperion_request_duration_seconds ",
                              "# TYPE hyperion_request_duration_seconds histogram\n",
                              "# TYPE hyperion_requests_total counter\n",
                              "# TYPE hyperion_widgets_made counter\n")
      found = samples(text)
      users = found['hyperion_request_duration_seconds_count'].find { |labels, _| labels['path'] == '/users/:id' }
      expect(users).to eq([{ 'worker_id' => '0', 'method' => 'GET', 'path' => '/users/:id', 'status' => '2xx' }, 2.0])
      expect(found['hyperion_widgets_made']).to eq([[{ 'worker_id' => '0' }, 2.0]])
      expect(found['hyperion_widget_parts']).to eq([[{ 'worker_id' => '0' }, 6.0]])
      expect(found['hyperion_rejections_total']).to include([{ 'worker_id' => '0', 'reason' => 'bad_version' }, 1.0])
      expect(found['hyperion_responses_total']).to include([{ 'worker_id' => '0', 'status' => '400' }, 1.0])
    end

    it 'refuses bad custom counter names' do
      server = start_server(fixture('observability.ru'), '--no-log-requests')
      get(server.port, '/count')
      require 'hyperion'
      expect { Hyperion.metrics.increment(:'no-dashes') }.to raise_error(ArgumentError, /invalid counter name/)
      expect { Hyperion.metrics.increment(:requests_total) }.to raise_error(ArgumentError, /built-in/)
    end
  end

  # Cluster workers run the epoll loop whatever the io_uring rerun asks (docs/ARCHITECTURE.md).
  def epoll
    { 'HYPERION_IO_URING' => nil }
  end

  it 'reports every worker of a -w 2 cluster in one scrape; a replacement worker keeps its counters' do
    server = start_server('-w', '2', fixture('observability.ru'), '--no-log-requests', env: epoll)
    eventually(timeout: 20) { server.log.scan(/worker \d booted/).size >= 2 }
    workers = {}
    eventually(timeout: 20, interval: 0) do
      body = get(server.port, '/count').body
      workers[body[/worker=(\d+)/, 1]] = Integer(body[/pid=(\d+)/, 1])
      workers.size >= 2
    end
    found = samples(get(server.port, '/metrics').body)
    made = found['hyperion_widgets_made'].to_h { |labels, value| [labels['worker_id'], value] }
    expect(made.keys).to contain_exactly('0', '1')
    expect(made.values).to all(be >= 1)
    requests = found['hyperion_requests_total'].to_h { |labels, value| [labels['worker_id'], value] }
    expect(requests.keys).to contain_exactly('0', '1')
    expect(requests.values).to all(be >= 1)

    # Worker 0 dies; its replacement takes slot 0 over, and the counts carry on from there.
    Process.kill('KILL', workers['0'])
    eventually(timeout: 20) { server.log.scan(/worker 0 booted/).size >= 2 }
    after = eventually(timeout: 20) do
      found = samples(get(server.port, '/metrics').body)
      found['hyperion_widgets_made'].to_h { |labels, value| [labels['worker_id'], value] }
    end
    expect(after['0']).to be >= made['0']
    eventually(timeout: 20, interval: 0) do
      body = get(server.port, '/count').body
      body.include?('worker=0') && Integer(body[/pid=(\d+)/, 1]) != workers['0']
    end
    final = samples(get(server.port, '/metrics').body)['hyperion_widgets_made'].to_h { |l, v| [l['worker_id'], v] }
    expect(final['0']).to be > made['0']
  end

  describe 'access log' do
    it 'writes one JSON line per response to stdout when piped, static routes and 404s included' do
      server = start_server(fixture('observability.ru'), env: { 'HYPERION_LOG_FORMAT' => nil })
      get(server.port, '/users/5', 'X-Request-Id' => 'abc-123')
      get(server.port, '/static')
      get(server.port, '/nope')
      lines = eventually { (found = access_lines(server)).size >= 3 && found }
      user, static, missing = %w[/users/5 /static /nope].map { |path| lines.find { |l| l['path'] == path } }
      expect(user).to include('level' => 'info', 'source' => 'hyperion', 'method' => 'GET', 'status' => 200,
                              'remote_addr' => '127.0.0.1', 'http_version' => 'HTTP/1.1', 'request_id' => 'abc-123')
      expect(user['ts']).to match(/\A\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z\z/)
      expect(user['duration_ms']).to be_a(Numeric)
      expect(user['bytes']).to be > 0
      expect(static).to include('status' => 200, 'method' => 'GET')
      expect(static).not_to have_key('request_id')
      expect(missing).to include('status' => 404)
      # The boot lines are JSON too.
      expect(server.log.lines.first).to start_with('{"ts":')
    end

    it 'writes text lines when asked to' do
      server = start_server(fixture('observability.ru'), '--log-format', 'text')
      get(server.port, '/users/9')
      line = eventually { server.log.lines.find { |l| l.include?('INFO [hyperion] request ') } }
      expect(line).to include('method=GET', 'path=/users/9', 'status=200', 'http_version=HTTP/1.1')
    end

    it 'writes none with --no-log-requests or HYPERION_LOG_REQUESTS=0' do
      quiet = start_server(fixture('observability.ru'), '--no-log-requests', env: { 'HYPERION_LOG_FORMAT' => nil })
      quiet_env = start_server(fixture('observability.ru'), env: { 'HYPERION_LOG_FORMAT' => nil, 'HYPERION_LOG_REQUESTS' => '0' })
      [quiet, quiet_env].each do |server|
        3.times { get(server.port, '/users/1') }
        # The stats answer comes after the three responses were completed and reported.
        get(server.port, '/stats')
        expect(access_lines(server)).to be_empty
        expect(server.log).to include('listening on')
      end
    end
  end

  describe 'log_file and HUP' do
    def log_file_entries(path)
      File.exist?(path) ? File.readlines(path).filter_map { |l| JSON.parse(l) rescue nil } : [] # rubocop:disable Style/RescueModifier
    end

    def expect_reopened_on_hup(server, path, after_hup_lines)
      get(server.port, '/users/1')
      eventually { log_file_entries(path).any? { |e| e['path'] == '/users/1' } }
      File.rename(path, "#{path}.1")
      server.signal('HUP')
      eventually { after_hup_lines.all? { |text| log_file_entries(path).any? { |e| e['message'].include?(text) } } }
      eventually do
        get(server.port, '/after')
        log_file_entries(path).any? { |e| e['path'] == '/after' }
      end
      expect(log_file_entries("#{path}.1").none? { |e| e['path'] == '/after' }).to be(true)
    end

    it 'appends every line to log_file and reopens it on HUP' do
      path = File.join(Dir.mktmpdir('hyperion-log'), 'hyperion.log')
      server = start_server(fixture('observability.ru'), '--log-file', path, env: { 'HYPERION_LOG_FORMAT' => nil })
      expect(log_file_entries(path).map { |e| e['message'] }.join("\n")).to include('listening on')
      expect_reopened_on_hup(server, path, ['HUP received: reopened'])
    end

    it 'reopens log_file in the master and every worker of a cluster' do
      path = File.join(Dir.mktmpdir('hyperion-log'), 'hyperion.log')
      server = start_server('-w', '2', fixture('observability.ru'), '--log-file', path,
                            env: epoll.merge('HYPERION_LOG_FORMAT' => nil))
      eventually(timeout: 20) { log_file_entries(path).count { |e| e['message'].match?(/worker \d booted/) } >= 2 }
      expect_reopened_on_hup(server, path, ['HUP received: reopened', 'worker 0 reopened', 'worker 1 reopened'])
    end
  end

  it 'has a Grafana dashboard that only queries exported metric names' do
    server = start_server(fixture('observability.ru'), '--no-log-requests')
    %w[/users/1 /count /static].each { |path| get(server.port, path) }
    exported = get(server.port, '/metrics').body.scan(/^# TYPE (\S+) (\S+)$/).flat_map do |name, type|
      type == 'histogram' ? %W[#{name}_bucket #{name}_sum #{name}_count] : [name]
    end
    dashboard = JSON.parse(File.read(File.join(ServerHelpers::ROOT, 'docs', 'grafana', 'hyperion-dashboard.json')))
    exprs = []
    walk = lambda do |node|
      case node
      when Hash then node.each { |key, value| key == 'expr' ? exprs << value : walk.call(value) }
      when Array then node.each(&walk)
      end
    end
    walk.call(dashboard)
    expect(exprs).not_to be_empty
    queried = exprs.flat_map { |expr| expr.scan(/\bhyperion_[a-z_]+/) }.uniq
    expect(queried).not_to be_empty
    # Custom counters depend on the app; the dashboard may only use built-in names.
    expect(queried - exported).to be_empty
  end
end
