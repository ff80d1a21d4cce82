# frozen_string_literal: true

require 'spec_helper'
require 'hyperion'

# The input of a request without a body must read like an empty binary StringIO, the input of
# any other small request.
RSpec.describe Hyperion::NullInput do
  let(:input) { described_class::INSTANCE }
  let(:empty) { StringIO.new(String.new(encoding: Encoding::BINARY)) }

  it 'reads like an empty StringIO' do
    [[], [nil], [0], [5]].each do |args|
      expect(input.read(*args)).to eq(empty.read(*args)), "read(#{args.join(', ')})"
    end
    expect(input.read.encoding).to eq(Encoding::BINARY)
    expect([input.gets, input.eof?, input.size, input.rewind, input.pos]).to eq([empty.gets, empty.eof?, empty.size, empty.rewind, empty.pos])
    expect(input.each.to_a).to eq([])
  end

  it 'empties a given buffer and returns it, or nil at the end for a positive length' do
    buffer = +'stale'
    expect(input.read(nil, buffer)).to be(buffer)
    expect(buffer).to eq('')
    buffer << 'stale'
    expect(input.read(4, buffer)).to be_nil
    expect(buffer).to eq('')
  end

  it 'refuses a negative length like IO does, and raises EOFError from readpartial' do
    expect { input.read(-1) }.to raise_error(ArgumentError)
    expect { input.readpartial(1) }.to raise_error(EOFError)
    expect(input.readpartial(0)).to eq('')
  end

  it 'is shared, frozen, and unchanged by close' do
    expect(input).to be_frozen
    input.close
    expect(input.closed?).to be(false)
    expect(input.read).to eq('')
  end
end
