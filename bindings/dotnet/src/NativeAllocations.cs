using System;
using System.Collections.Generic;
using System.Runtime.InteropServices;
using System.Text;

namespace Trunkline
{
    /// <summary>Unmanaged memory a config points to (strings, a session config) for the length of
    /// one native call: the library copies what it needs during the call. Dispose frees it all.</summary>
    internal sealed unsafe class NativeAllocations : IDisposable
    {
        readonly List<IntPtr> blocks = new List<IntPtr>();

        /// <summary>A NUL-terminated UTF-8 copy of <paramref name="s"/> (null → NULL).
        /// ArgumentException if it contains NUL.</summary>
        public byte* Utf8Z(string s, string name)
        {
            if (s == null) return null;
            if (s.IndexOf('\0') >= 0) throw new ArgumentException(name + " cannot contain NUL", name);
            var bytes = Encoding.UTF8.GetBytes(s);
            var p = Alloc(bytes.Length + 1);
            Marshal.Copy(bytes, 0, p, bytes.Length);
            ((byte*)p)[bytes.Length] = 0;
            return (byte*)p;
        }

        /// <summary>A copy of <paramref name="config"/> in its marshalled (C) form.</summary>
        public NativeSessionConfig* SessionConfig(NativeSessionConfig config)
        {
            var p = Alloc(Marshal.SizeOf(typeof(NativeSessionConfig)));
            Marshal.StructureToPtr(config, p, false);
            return (NativeSessionConfig*)p;
        }

        IntPtr Alloc(int bytes)
        {
            var p = Marshal.AllocHGlobal(bytes);
            blocks.Add(p);
            return p;
        }

        public void Dispose()
        {
            foreach (var p in blocks) Marshal.FreeHGlobal(p);
            blocks.Clear();
        }
    }
}
