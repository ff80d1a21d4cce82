# frozen_string_literal: true

module Hyperion
  VERSION = '0.1.0'
end
