# frozen_string_literal: true

module Hyperion
  # Runs the blocks a config file registered with before_fork, on_worker_boot and
  # on_worker_shutdown. A hook that raises is logged with the file and line where it was
  # defined, and the process carries on: a failing hook must not take a worker down with it.
  class Hooks
    def initialize(hooks, logger)
      @hooks = hooks
      @logger = logger
    end

    def run(name, *args)
      @hooks.fetch(name, []).each do |hook|
        hook.call(*args)
      rescue StandardError, ScriptError => e
        file, line = hook.source_location
        @logger.exception(e, "#{name} hook defined at #{file}:#{line} raised (continuing)")
      end
    end
  end
end
