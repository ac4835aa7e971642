using System;
using System.Collections.Generic;
using System.Runtime.InteropServices;
using System.Text;

namespace Trunkline
{
    /// <summary>Unmanaged memory a config points to (strings, a session config, routes) for the length of
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

        /// <summary>A C array of <paramref name="routes"/> (NULL when empty).</summary>
        public NativeRoute* Routes(NativeRoute[] routes)
        {
            if (routes.Length == 0) return null;
            int size = Marshal.SizeOf(typeof(NativeRoute));
            var p = Alloc(size * routes.Length);
            for (int i = 0; i < routes.Length; i++) Marshal.StructureToPtr(routes[i], p + size * i, false);
            return (NativeRoute*)p;
        }

        /// <summary>A C array of NUL-terminated UTF-8 copies of <paramref name="strings"/> (NULL
        /// when empty). ArgumentException for a null string or one containing NUL.</summary>
        public byte** Utf8ZArray(IList<string> strings, string name)
        {
            if (strings.Count == 0) return null;
            var p = (byte**)Alloc(IntPtr.Size * strings.Count);
            for (int i = 0; i < strings.Count; i++)
            {
                if (strings[i] == null) throw new ArgumentException(name + " cannot hold null", name);
                p[i] = Utf8Z(strings[i], name);
            }
            return p;
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
