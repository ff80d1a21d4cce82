# frozen_string_literal: true

require 'spec_helper'

# Every rejected request is counted and logged once at warn level with the peer and the
# reason, at most a few lines per second so a flood cannot fill the disk.
RSpec.describe 'Rejected requests in the log' do
  it 'logs one warn line per rejection with peer address, status and reason' do
    server = start_server(fixture('echo.ru'))
    sock = TCPSocket.new('127.0.0.1', server.port)
    local_port = sock.local_address.ip_port
    sock.write("GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\nx")
    data, = read_to_eof(sock)
    expect(data).to start_with('HTTP/1.1 400 ')
    line = eventually { server.log.lines.find { |l| l.include?('request rejected') } }
    expect(line).to include('WARN [hyperion] request rejected', "peer=127.0.0.1:#{local_port}",
                            'status=400', 'reason=duplicate_content_length')
  ensure
    sock&.close
  end

  it 'rate-limits the lines during a flood and still answers every request' do
    server = start_server(fixture('echo.ru'))
    200.times do
      sock = TCPSocket.new('127.0.0.1', server.port)
      sock.write("BAD\r\n\r\n")
      data, = read_to_eof(sock)
      expect(data).to start_with('HTTP/1.1 400 ')
      sock.close
    end
    # 10 lines per second at most: 200 rejections would need 20 seconds to all be logged.
    logged = server.log.lines.count { |l| l.include?('request rejected') }
    expect(logged).to be_between(1, 199)
  end
end
