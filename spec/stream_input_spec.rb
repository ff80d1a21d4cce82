# frozen_string_literal: true

require 'spec_helper'
require 'hyperion'

# Hyperion::StreamInput's Rack 3 input semantics over the pieces the engine hands it, one
# DATA frame at a time (the native reader is replaced by a list of pieces here; the real one
# is exercised end to end in spec/e2e/grpc_wire_spec.rb).
RSpec.describe Hyperion::StreamInput do
  # Gives the pieces in order, then nil (the end of the body); counts the waits.
  class StreamInputPieces
    attr_reader :waits, :closed

    def initialize(pieces)
      @pieces = pieces.map { |piece| piece.dup.force_encoding(Encoding::BINARY) }
      @waits = 0
      @closed = false
    end

    def next_chunk
      @waits += 1
      @pieces.shift
    end

    def close
      @closed = true
    end
  end

  def input(*pieces)
    described_class.new(StreamInputPieces.new(pieces))
  end

  it 'reads exactly n bytes across pieces, fewer only at the end, then nil' do
    io = input('ab', 'cde', 'f')
    expect(io.read(4)).to eq('abcd')
    expect(io.read(4)).to eq('ef')
    expect(io.read(4)).to be_nil
    expect(io.read).to eq('')
  end

  it 'reads the rest without a length, and zero bytes without waiting' do
    source = StreamInputPieces.new(%w[ab cd])
    io = described_class.new(source)
    expect(io.read(0)).to eq('')
    expect(source.waits).to eq(0)
    expect(io.read).to eq('abcd')
    expect(io.read).to eq('')
  end

  it 'fills the buffer it is given, and empties it at the end' do
    io = input('abc')
    buffer = +'previous contents'
    expect(io.read(2, buffer)).to equal(buffer)
    expect(buffer).to eq('ab')
    expect(io.read(nil, buffer)).to eq('c')
    expect(io.read(1, buffer)).to be_nil
    expect(buffer).to eq('')
  end

  it 'returns lines across pieces with gets' do
    io = input("a\nb", "c\n", 'd')
    expect([io.gets, io.gets, io.gets, io.gets]).to eq(["a\n", "bc\n", 'd', nil])
  end

  it 'yields the pieces as they arrived with each, after what a read left over' do
    io = input('abc', 'de')
    expect(io.read(1)).to eq('a')
    expect(io.each.to_a).to eq(%w[bc de])
  end

  it 'returns what there is with readpartial' do
    io = input('abc', 'de')
    expect(io.readpartial(10)).to eq('abc')
    expect(io.readpartial(1)).to eq('d')
    expect(io.readpartial(10)).to eq('e')
    expect(io.readpartial(10)).to be_nil
  end

  it 'hands out binary strings' do
    expect(input("\xFF\x00".b).read.encoding).to eq(Encoding::BINARY)
  end

  it 'closes the native reader and refuses reads after close' do
    source = StreamInputPieces.new(%w[ab])
    io = described_class.new(source)
    io.close
    expect(source.closed).to be(true)
    expect(io).to be_closed
    expect { io.read }.to raise_error(IOError)
  end

  it 'refuses a negative length and cannot be rewound' do
    expect { input('a').read(-1) }.to raise_error(ArgumentError)
    expect { input('a').rewind }.to raise_error(Errno::ESPIPE)
  end
end
