# frozen_string_literal: true

module Hyperion
  # `rack.input` of a request without a body: a stream already at its end. It holds no state,
  # so one frozen instance serves every such request, and closing it changes nothing.
  class NullInput
    EMPTY = String.new(encoding: Encoding::BINARY).freeze

    # As IO#read: an empty String without a length (or with 0), nil for a positive length. A
    # given buffer is emptied, and is the String returned.
    def read(length = nil, buffer = nil)
      raise ArgumentError, "negative length #{length} given" if length&.negative?

      buffer&.clear
      return nil if length&.positive?

      buffer || String.new(encoding: Encoding::BINARY)
    end

    # As IO#readpartial: EOFError, except for a length of 0.
    def readpartial(length, buffer = nil)
      raise ArgumentError, "negative length #{length} given" if length.negative?

      buffer&.clear
      raise EOFError, 'end of file reached' if length.positive?

      buffer || String.new(encoding: Encoding::BINARY)
    end

    def gets(*_args)
      nil
    end

    def each(*_args)
      return enum_for(:each) unless block_given?

      self
    end
    alias each_line each

    def rewind
      0
    end

    def pos
      0
    end
    alias tell pos

    def eof?
      true
    end
    alias eof eof?

    def size
      0
    end

    def string
      EMPTY
    end

    def close
      nil
    end

    def closed?
      false
    end

    def binmode
      self
    end

    def binmode?
      true
    end

    def external_encoding
      Encoding::BINARY
    end

    def set_encoding(*_args)
      self
    end

    INSTANCE = new.freeze
  end
end
