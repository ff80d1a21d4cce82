# frozen_string_literal: true

module Hyperion
  # `rack.input` for a request body that is still arriving (gRPC over HTTP/2): every read takes
  # bytes as the client's DATA frames come in, blocking (with the GVL released) until there are
  # enough or the body ends. What the app has taken is given back to the client as HTTP/2
  # flow-control window, so a slow reader slows the client down.
  #
  # Follows the Rack 3 input rules: `read(length = nil, buffer = nil)` like IO#read (with a
  # length: up to that many bytes, fewer only at the end of the body, nil at the end; without:
  # the rest of the body, "" at the end), `gets` (a line, or nil at the end), `each` (yields
  # the bytes as they arrive, in the pieces they arrived in), `close`. `readpartial(max)`
  # returns what is there as soon as anything is. A client reset, a body over
  # `max_body_bytes` or `max_request_read_seconds` without bytes raise
  # Hyperion::InputError (an IOError).
  class StreamInput
    def initialize(native)
      @native = native
      @buffer = nil
      @eof = false
      @closed = false
    end

    def read(length = nil, buffer = nil)
      raise ArgumentError, "negative length #{length} given" if length&.negative?

      out = length.nil? ? read_all : read_upto(length)
      return out if buffer.nil?

      buffer.replace(out || '')
      out && buffer
    end

    # Whatever is available, up to `max` bytes, waiting only while nothing is; nil at the end.
    def readpartial(max)
      return +''.b if max.zero?
      return nil unless fill

      take(max)
    end

    def gets
      line = nil
      while fill
        newline = @buffer.index("\n")
        piece = take(newline ? newline + 1 : @buffer.bytesize)
        line = line ? line << piece : piece
        return line if newline
      end
      line
    end

    def each
      return enum_for(:each) unless block_given?

      while fill
        chunk = @buffer
        @buffer = nil
        yield chunk
      end
      self
    end

    def close
      @closed = true
      @buffer = nil
      @native.close
      nil
    end

    def closed?
      @closed
    end

    def eof?
      !fill
    end

    def rewind
      raise Errno::ESPIPE, 'a streamed request body cannot be rewound'
    end

    private

    def read_all
      out = +''.b
      while fill
        out << @buffer
        @buffer = nil
      end
      out
    end

    def read_upto(length)
      return +''.b if length.zero?

      out = nil
      while (out.nil? || out.bytesize < length) && fill
        piece = take(length - (out ? out.bytesize : 0))
        out = out ? out << piece : piece
      end
      out
    end

    # Bytes in @buffer, waiting for the next ones if it is empty; false at the end.
    def fill
      raise IOError, 'closed stream' if @closed
      return true if @buffer && !@buffer.empty?
      return false if @eof

      @buffer = @native.next_chunk
      @eof = true if @buffer.nil?
      !@buffer.nil?
    end

    def take(max)
      if @buffer.bytesize <= max
        piece = @buffer
        @buffer = nil
      else
        piece = @buffer.byteslice(0, max)
        @buffer = @buffer.byteslice(max, @buffer.bytesize - max)
      end
      piece
    end
  end
end
