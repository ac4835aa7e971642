using System;
using System.Text;

namespace Trunkline
{
    /// <summary>Trunkline's own logs: the offload server's calls (start, and end with the call's
    /// summary), refusals and failed calls with their reason, drains. Nothing is logged until
    /// <see cref="ToStderr"/> is called; never a line per audio frame.</summary>
    public static unsafe class Logging
    {
        /// <summary>Writes Trunkline's logs to stderr, one line per event, filtered by
        /// <paramref name="filter"/> in the RUST_LOG syntax (e.g. "trunkline=info",
        /// "trunkline=debug", "warn,trunkline_server=info"); null: the TRUNKLINE_LOG environment
        /// variable, else "trunkline=info". Installs a logger for the whole process, once: returns
        /// true when it did, false when one was already installed (nothing changes). Throws
        /// TrunklineException(InvalidArgument) for a filter that does not parse (the reason is
        /// written to stderr), ArgumentException for one containing NUL. Any thread.</summary>
        public static bool ToStderr(string filter = null)
        {
            ResultCode r;
            if (filter == null)
            {
                r = Native.trunkline_log_to_stderr(null);
            }
            else
            {
                if (filter.IndexOf('\0') >= 0) throw new ArgumentException("a log filter cannot contain NUL", "filter");
                var bytes = new byte[Encoding.UTF8.GetByteCount(filter) + 1];
                Encoding.UTF8.GetBytes(filter, 0, filter.Length, bytes, 0);
                fixed (byte* p = bytes) r = Native.trunkline_log_to_stderr(p);
            }
            if (r == ResultCode.Full) return false;
            Native.Check(r, "trunkline_log_to_stderr");
            return true;
        }
    }
}
