# frozen_string_literal: true

module Hyperion
  # The `log_file` setting: stdout and stderr of the process (descriptors 1 and 2, which the
  # engine's log thread writes to as well) are pointed at the file, opened for appending.
  #
  # `reopen` opens the path again and moves descriptors 1 and 2 onto the new file (`dup2`
  # underneath, so no writer ever sees a closed descriptor): after a log rotation renamed the
  # file, a HUP makes new lines go to a fresh file at the configured path.
  module LogFile
    module_function

    # Raises ConfigError when the file cannot be opened for appending.
    def open(path)
      reopen(path)
    rescue SystemCallError, IOError => e
      raise ConfigError, "log_file #{path}: #{e.message}"
    end

    def reopen(path)
      File.open(path, 'a') { |file| file.sync = true } # fails here, before touching stdout
      [$stdout, $stderr].each do |io|
        io.reopen(path, 'a')
        io.sync = true
      end
      nil
    end
  end
end
