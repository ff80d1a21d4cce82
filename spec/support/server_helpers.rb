# frozen_string_literal: true

require 'socket'
require 'timeout'

# Starts real `bin/hyperion` processes on free ports and talks to them over real sockets.
module ServerHelpers
  ROOT = File.expand_path('../..', __dir__)
  BIN = File.join(ROOT, 'bin', 'hyperion')
  FIXTURES = File.join(ROOT, 'spec', 'fixtures')

  # A server child process; output goes to a log file readable with #log.
  class ServerProcess
    attr_reader :pid, :port, :log_path

    def initialize(pid:, port:, log_path:)
      @pid = pid
      @port = port
      @log_path = log_path
    end

    def log
      File.exist?(@log_path) ? File.read(@log_path) : ''
    end

    def alive?
      Process.waitpid(@pid, Process::WNOHANG).nil?
    rescue Errno::ECHILD
      false
    end

    def signal(name)
      Process.kill(name, @pid)
    end

    # Waits for the process to exit; returns its Process::Status (nil on timeout).
    def wait_exit(timeout = 15)
      Timeout.timeout(timeout) { Process.wait2(@pid).last }
    rescue Timeout::Error
      nil
    end

    def stop
      return unless alive?

      signal('TERM')
      return if wait_exit(10)

      signal('KILL')
      wait_exit(5)
    rescue Errno::ESRCH, Errno::ECHILD
      nil
    end
  end

  def self.free_port
    server = TCPServer.new('127.0.0.1', 0)
    server.addr[1]
  ensure
    server&.close
  end

  def free_port
    ServerHelpers.free_port
  end

  def fixture(name)
    File.join(FIXTURES, name)
  end

  # Spawns `bin/hyperion ARGS` with `-p PORT` (unless args already bind) and waits until the
  # port accepts connections. `env` adds environment variables; `chdir` sets the directory.
  # HYPERION_SPEC_IO_URING=on|auto runs every server with that connection loop (`rake
  # spec_io_uring` reruns the behaviour specs that way).
  def start_server(*args, env: {}, chdir: ROOT, port: free_port, wait: true)
    log_path = File.join(Dir.mktmpdir('hyperion-spec'), 'server.log')
    argv = [RbConfig.ruby, BIN, *args]
    argv += ['-p', port.to_s] unless args.any? { |a| %w[-p --port -b --bind].include?(a) }
    # Output goes to a file, which would make the log format JSON: specs read text unless they
    # ask otherwise.
    child_env = { 'RACK_ENV' => nil, 'RAILS_ENV' => nil, 'HYPERION_ENVIRONMENT' => nil, 'PORT' => nil,
                  'HYPERION_LOG_FORMAT' => 'text', 'HYPERION_LOG_REQUESTS' => nil, 'HYPERION_LOG_FILE' => nil,
                  'HYPERION_IO_URING' => ENV.fetch('HYPERION_SPEC_IO_URING', nil) }.merge(env)
    pid = Process.spawn(child_env, *argv, chdir: chdir, out: log_path, err: %i[child out], pgroup: true)
    server = ServerProcess.new(pid: pid, port: port, log_path: log_path)
    (@started_servers ||= []) << server
    wait_for_port(server) if wait
    server
  end

  def wait_for_port(server, timeout: 20)
    deadline = Process.clock_gettime(Process::CLOCK_MONOTONIC) + timeout
    loop do
      begin
        TCPSocket.new('127.0.0.1', server.port).close
        wait_for_boot_log(server)
        return server
      rescue Errno::ECONNREFUSED, Errno::ECONNRESET
        raise "server exited early:\n#{server.log}" unless server.alive?
        raise "server did not listen within #{timeout}s:\n#{server.log}" if Process.clock_gettime(Process::CLOCK_MONOTONIC) > deadline

        sleep 0.05
      end
    end
  end

  # The port opens while the engine starts; the boot lines (environment, loop, addresses) are
  # written just after. Specs read them, so wait for the last one, briefly: a server started
  # with a quieter log level never writes it.
  def wait_for_boot_log(server, timeout: 5)
    deadline = Process.clock_gettime(Process::CLOCK_MONOTONIC) + timeout
    until server.log.include?('listening on') || Process.clock_gettime(Process::CLOCK_MONOTONIC) > deadline
      sleep 0.02
    end
  end

  # Polls until the block is truthy (no timing assertions: only a generous ceiling).
  def eventually(timeout: 10, interval: 0.05)
    deadline = Process.clock_gettime(Process::CLOCK_MONOTONIC) + timeout
    loop do
      result = yield
      return result if result
      raise 'condition not met in time' if Process.clock_gettime(Process::CLOCK_MONOTONIC) > deadline

      sleep interval
    end
  end

  # Raw socket: write bytes, read until the peer closes or `until_pattern` matches.
  def raw_request(port, bytes, until_pattern: nil, timeout: 10)
    sock = TCPSocket.new('127.0.0.1', port)
    sock.write(bytes)
    read_until(sock, until_pattern, timeout: timeout)
  ensure
    sock&.close
  end

  def read_until(sock, pattern = nil, timeout: 10)
    data = +''
    deadline = Process.clock_gettime(Process::CLOCK_MONOTONIC) + timeout
    loop do
      break if pattern && data.match?(pattern)

      remaining = deadline - Process.clock_gettime(Process::CLOCK_MONOTONIC)
      break if remaining <= 0
      break unless sock.wait_readable(remaining)

      chunk = sock.read_nonblock(65_536, exception: false)
      break if chunk.nil?
      next if chunk == :wait_readable

      data << chunk
    end
    data
  rescue Errno::ECONNRESET
    data
  end

  # Splits a raw HTTP/1.1 byte stream into responses: [[status, headers_hash, body], ...].
  # Understands content-length and chunked bodies.
  def parse_responses(data)
    responses = []
    rest = data.b
    until rest.empty?
      head, rest = rest.split("\r\n\r\n", 2)
      break if rest.nil?

      lines = head.split("\r\n")
      status = lines.shift[/\AHTTP\/1\.[01] (\d{3})/, 1].to_i
      headers = {}
      lines.each do |line|
        name, value = line.split(':', 2)
        headers[name.downcase] = headers.key?(name.downcase) ? "#{headers[name.downcase]}, #{value.strip}" : value.strip
      end
      if (status >= 100 && status < 200) || status == 204 || status == 304
        body = ''
      elsif headers['transfer-encoding'] == 'chunked'
        body = +''
        loop do
          size_line, rest = rest.split("\r\n", 2)
          size = size_line.to_i(16)
          if size.zero?
            rest = rest.sub(/\A\r\n/, '')
            break
          end
          body << rest.byteslice(0, size)
          rest = rest.byteslice(size + 2..) || ''
        end
      elsif headers['content-length']
        len = headers['content-length'].to_i
        body = rest.byteslice(0, len)
        rest = rest.byteslice(len..) || ''
      else
        body = rest
        rest = ''
      end
      responses << [status, headers, body]
    end
    responses
  end
end

RSpec.configure do |config|
  config.after do
    (@started_servers || []).each(&:stop)
  end
end

# Helpers added for the end-to-end suite (spec/e2e).
module ServerHelpers
  # For `before(:all)`: starts a server that is NOT stopped by the per-example `after` hook
  # (instance variables set in before(:all) are copied into every example, so a server
  # registered in @started_servers would be stopped after the first example). Stop it
  # yourself in `after(:all)`.
  def start_shared_server(*args, **opts)
    server = start_server(*args, **opts)
    @started_servers.delete(server)
    server
  end

  # Reads until the peer closes (or `timeout`). Returns [data, closed?].
  def read_to_eof(sock, timeout: 10)
    data = +''
    deadline = Process.clock_gettime(Process::CLOCK_MONOTONIC) + timeout
    loop do
      remaining = deadline - Process.clock_gettime(Process::CLOCK_MONOTONIC)
      return [data, false] if remaining <= 0
      return [data, false] unless sock.wait_readable(remaining)

      chunk = sock.read_nonblock(65_536, exception: false)
      return [data, true] if chunk.nil?
      next if chunk == :wait_readable

      data << chunk
    end
  rescue Errno::ECONNRESET, Errno::EPIPE
    [data, true]
  end

  # Reads exactly one complete response (content-length or chunked framing; bodiless for
  # 1xx/204/304 and when `head: true`) from a keep-alive socket. Returns
  # [status, headers, body, raw_bytes]; raises if the response is incomplete within `timeout`.
  def read_response(sock, head: false, timeout: 10)
    buffer = (@read_response_buffers ||= {}.compare_by_identity)[sock] ||= +''
    deadline = Process.clock_gettime(Process::CLOCK_MONOTONIC) + timeout
    fill = lambda do
      remaining = deadline - Process.clock_gettime(Process::CLOCK_MONOTONIC)
      raise "incomplete response within #{timeout}s: #{buffer.inspect[0, 500]}" if remaining <= 0 || !sock.wait_readable(remaining)

      chunk = sock.read_nonblock(65_536, exception: false)
      raise "connection closed mid-response: #{buffer.inspect[0, 500]}" if chunk.nil?

      buffer << chunk.b unless chunk == :wait_readable
    end
    fill.call until buffer.include?("\r\n\r\n")
    head_text, = buffer.split("\r\n\r\n", 2)
    head_len = head_text.bytesize + 4
    lines = head_text.split("\r\n")
    status = lines.first[%r{\AHTTP/1\.[01] (\d{3})}, 1].to_i
    headers = {}
    lines.drop(1).each do |line|
      name, value = line.split(':', 2)
      key = name.downcase
      headers[key] = headers.key?(key) ? "#{headers[key]}, #{value.strip}" : value.strip
    end
    total =
      if head || (100..199).cover?(status) || [204, 304].include?(status)
        head_len
      elsif headers['transfer-encoding'] == 'chunked'
        fill.call until buffer.byteslice(head_len..).match?(/(?:\A|\r\n)0\r\n(?:[^\r\n]+\r\n)*\r\n/)
        head_len + buffer.byteslice(head_len..).index(/(?:\A|\r\n)0\r\n(?:[^\r\n]+\r\n)*\r\n/) +
          buffer.byteslice(head_len..)[/(?:\A|\r\n)0\r\n(?:[^\r\n]+\r\n)*\r\n/].bytesize
      elsif headers['content-length']
        head_len + headers['content-length'].to_i
      else
        fill.call while true # rubocop:disable Style/InfiniteLoop -- until close raises
      end
    fill.call while buffer.bytesize < total
    raw = buffer.byteslice(0, total)
    buffer.replace(buffer.byteslice(total..) || +'')
    parsed = parse_responses(raw).first
    [parsed[0], parsed[1], parsed[2], raw]
  end

  # A plain GET over Net::HTTP on 127.0.0.1.
  def http_get(port, path, headers = {})
    Net::HTTP.start('127.0.0.1', port, open_timeout: 10, read_timeout: 30) do |http|
      http.request(Net::HTTP::Get.new(path, headers))
    end
  end
end

module ServerHelpers
  # Teardown for servers whose shutdown is not what the example tests: TERM, then KILL if the
  # process has not exited after `grace` seconds (keeps the suite fast whatever the stop path
  # does; spec/e2e/lifecycle_spec.rb is where shutdown itself is asserted).
  def stop_quickly(server, grace: 2)
    return unless server&.alive?

    server.signal('TERM')
    return if server.wait_exit(grace)

    server.signal('KILL')
    server.wait_exit(5)
  rescue Errno::ESRCH, Errno::ECHILD
    nil
  end

  def stop_started_servers_quickly
    (@started_servers || []).each { |server| stop_quickly(server) }
  end

  # Cluster workers share the master's process group: nothing an example started survives.
  def kill_started_process_groups
    (@started_servers || []).each do |server|
      Process.kill('KILL', -server.pid)
    rescue Errno::ESRCH, Errno::EPERM
      nil
    end
  end
end
