# frozen_string_literal: true

# Whether this kernel lets the engine run its io_uring loop (a seccomp profile or
# kernel.io_uring_disabled may forbid it). Asked once, in a child process. Used by the specs
# and by `rake spec_io_uring`, so it needs nothing from RSpec.
module IoUringProbe
  LIB = File.expand_path('../../lib', __dir__)
  PROBE = 'require "hyperion"; e = Hyperion::Native::Engine.start(listeners: [["tcp", "127.0.0.1", 0]], ' \
          'io_uring: "on"); e.stop; e.wait(nil)'

  def self.available?
    return @available unless @available.nil?

    @available = system(RbConfig.ruby, '-I', LIB, '-e', PROBE, err: File::NULL) || false
  end
end
