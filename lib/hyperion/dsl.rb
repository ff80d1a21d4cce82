# frozen_string_literal: true

require 'hyperion/config'

module Hyperion
  # The object a config file (config/hyperion.rb) is evaluated in.
  #
  # It has one method per setting of Hyperion::Config (plus aliases such as thread_count), each
  # taking exactly one value that is checked with the same coercion as the CLI and environment,
  # and one method per hook (Config::HOOKS), each taking a block. It is strict: any other bare
  # call or name raises ConfigError pointing at the file and line, so a typo cannot silently
  # leave a default in place. Setting a name twice: the last one wins; a hook given twice runs
  # both blocks, in order. Ordinary Ruby (ENV, require, conditionals) still works.
  class DSL
    # Evaluates the file at `path` and returns [settings, hooks]: { name => value } and
    # { hook_name => [blocks] }.
    def self.load(path)
      settings = {}
      hooks = {}
      new(path, settings, hooks).__send__(:evaluate)
      [settings, hooks]
    end

    Config.settings.each_value do |setting|
      [setting.name, *setting.aliases].each do |method_name|
        define_method(method_name) do |*args|
          unless args.size == 1
            raise ConfigError, "#{method_name} takes exactly one value, got #{args.size} in #{location}"
          end

          @settings[setting.name] = Config.coerce(setting, args.first, location)
          nil
        end
      end
    end

    # A block of related settings, named without their group prefix:
    #   h2 do
    #     max_concurrent_streams 64
    #     max_total_streams :unbounded
    #   end
    Config::GROUPS.each do |group, names|
      define_method(group) do |*args, &block|
        raise ConfigError, "#{group} takes a block and no value, in #{location}" unless args.empty? && block

        Group.new(self, group, names).instance_eval(&block)
        nil
      end
    end

    # The receiver of a settings block: each name sets `<group>_<name>` on the DSL.
    class Group < BasicObject
      def initialize(dsl, group, names)
        @dsl = dsl
        @group = group
        @names = names
      end

      def method_missing(name, *args)
        unless @names.include?(name)
          ::Kernel.raise ::Hyperion::ConfigError,
                         "unknown setting `#{name}' in #{@group} block, in #{@dsl.__send__(:location)}"
        end

        @dsl.public_send(:"#{@group}_#{name}", *args)
      end

      def respond_to_missing?(name, _include_private = false)
        @names.include?(name)
      end
    end

    # preload_static 'public'                    (immutable: loaded once)
    # preload_static 'public', immutable: false  (re-checked every 5 s when requested)
    # Repeatable: each call adds a directory.
    def preload_static(dir, immutable: true)
      setting = Config.settings.fetch(:preload_static)
      added = Config.coerce(setting, [{ dir: dir, immutable: immutable }], location)
      @settings[:preload_static] = [*@settings[:preload_static], *added].freeze
      nil
    end

    # Request hooks, run on the application thread around every request:
    #   on_request_start { |request, env| }
    #   on_request_end { |request, env, response, error| }
    def on_request_start(*args, &block)
      add_hook(:on_request_start, args, block)
    end

    def on_request_end(*args, &block)
      add_hook(:on_request_end, args, block)
    end

    # Hooks run in cluster mode only (workers other than 1). One that raises is logged with its
    # file and line, and the process carries on.

    # In the master, once, before the first worker is forked: close what must not be shared.
    #   before_fork { ActiveRecord::Base.connection_handler.clear_all_connections! }
    def before_fork(*args, &block)
      add_hook(:before_fork, args, block)
    end

    # In each worker (index 0...workers; a replacement keeps the index), after the app is
    # loaded and signal handling is installed, before it serves its first request.
    #   on_worker_boot { |index| ActiveRecord::Base.establish_connection }
    def on_worker_boot(*args, &block)
      add_hook(:on_worker_boot, args, block)
    end

    # In each worker after it has stopped serving (its requests are finished), before it exits.
    #   on_worker_shutdown { |index| $stdout.flush }
    def on_worker_shutdown(*args, &block)
      add_hook(:on_worker_shutdown, args, block)
    end

    def initialize(path, settings, hooks)
      @path = path
      @settings = settings
      @hooks = hooks
    end

    private

    def evaluate
      instance_eval(File.read(@path), @path, 1)
    rescue ConfigError
      raise
    rescue SyntaxError => e
      raise ConfigError, e.message
    rescue ScriptError, StandardError => e
      frame = Array(e.backtrace_locations).find { |loc| loc.path == @path }
      where = frame ? "#{@path}:#{frame.lineno}" : @path
      raise ConfigError, "error in #{where}: #{e.message} (#{e.class})"
    end

    def add_hook(name, args, block)
      raise ConfigError, "#{name} takes a block and no value, in #{location}" unless args.empty? && block

      (@hooks[name] ||= []) << block
      nil
    end

    def method_missing(name, *_args)
      raise ConfigError, "unknown setting `#{name}' in #{location}"
    end

    def respond_to_missing?(_name, _include_private = false)
      false
    end

    # file:line of the config-file line currently being evaluated.
    def location
      frame = caller_locations.find { |loc| loc.path == @path }
      frame ? "#{@path}:#{frame.lineno}" : @path
    end
  end
end
