# frozen_string_literal: true

# The echo service of spec/grpc/echo.proto as a plain Rack app: what docs/GRPC.md shows, and what
# the gRPC specs and bench/grpc.sh serve. gRPC over HTTP/2 is a POST per call whose body is a
# sequence of length-prefixed messages; the answer is the same framing in the response body,
# and the call's status travels in trailers (`grpc-status`, `grpc-message`).
require_relative 'echo_pb'

module EchoApp
  PREFIX = 5 # one flag byte (compressed or not) and a big-endian u32 length

  # gRPC status codes used here (https://grpc.github.io/grpc/core/md_doc_statuscodes.html).
  OK = 0
  INVALID_ARGUMENT = 3
  UNIMPLEMENTED = 12

  HEADERS = { 'content-type' => 'application/grpc' }.freeze

  # A response body that yields one framed message per `each` step and ends the stream with
  # the call's status as trailers.
  class Body
    def initialize(&producer)
      @producer = producer
      @trailers = { 'grpc-status' => OK.to_s }
    end

    def each
      @producer.call(->(reply) { yield EchoApp.frame(reply.to_proto) })
    rescue CallError => e
      @trailers = { 'grpc-status' => e.code.to_s, 'grpc-message' => e.message }
    end

    attr_reader :trailers
  end

  class CallError < StandardError
    attr_reader :code

    def initialize(code, message)
      super(message)
      @code = code
    end
  end

  def self.frame(bytes)
    [0, bytes.bytesize].pack('CN') << bytes.b
  end

  # Yields each request message as it arrives: `rack.input` blocks until the next DATA frame.
  def self.each_request(input)
    while (prefix = read_exactly(input, PREFIX))
      compressed, length = prefix.unpack('CN')
      raise CallError.new(UNIMPLEMENTED, 'compressed messages are not supported') if compressed != 0

      message = read_exactly(input, length)
      raise CallError.new(INVALID_ARGUMENT, 'truncated message') unless message

      yield Echo::EchoRequest.decode(message)
    end
  end

  # nil at a clean end of the body; a short read in the middle of a message is an error.
  def self.read_exactly(input, length)
    return +'' if length.zero?

    data = input.read(length)
    return nil if data.nil? || data.empty?

    while data.bytesize < length
      more = input.read(length - data.bytesize)
      raise CallError.new(INVALID_ARGUMENT, 'truncated message') if more.nil? || more.empty?

      data << more
    end
    data
  end

  CALLS = {
    '/echo.Echo/Unary' => lambda do |input, reply|
      each_request(input) do |request|
        raise CallError.new(request.fail_with, "failed as asked: #{request.message}") if request.fail_with != 0

        reply.call(Echo::EchoReply.new(message: request.message))
      end
    end,
    '/echo.Echo/ServerStream' => lambda do |input, reply|
      each_request(input) do |request|
        request.count.times { |i| reply.call(Echo::EchoReply.new(message: request.message, index: i)) }
      end
    end,
    '/echo.Echo/ClientStream' => lambda do |input, reply|
      messages = []
      each_request(input) { |request| messages << request.message }
      reply.call(Echo::EchoReply.new(message: messages.join(','), index: messages.size))
    end,
    '/echo.Echo/Chat' => lambda do |input, reply|
      index = 0
      each_request(input) do |request|
        reply.call(Echo::EchoReply.new(message: request.message, index: index))
        index += 1
      end
    end
  }.freeze

  def self.call(env)
    return [405, { 'content-type' => 'text/plain', 'allow' => 'POST' }, ['POST only']] unless env['REQUEST_METHOD'] == 'POST'

    input = env['rack.input']
    call = CALLS.fetch(env['PATH_INFO']) do
      # gRPC answers an unknown method with a status, not an HTTP error.
      ->(_input, _reply) { raise CallError.new(UNIMPLEMENTED, "unknown method #{env['PATH_INFO']}") }
    end
    [200, HEADERS.dup, Body.new { |reply| call.call(input, reply) }]
  end
end
