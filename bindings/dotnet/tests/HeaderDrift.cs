// The header-drift check: include/trunkline.h is parsed (prototypes, struct fields in order with
// their C types, enum values, the version and name-length macros) and compared with the P/Invoke
// declarations of Trunkline.dll by reflection. Any difference fails, and so does a header function
// that is not bound, a binding of a function the header does not declare, or a C# mirror of a type
// the header does not have. The check is checked too: doctored headers must fail it.
using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using System.Reflection;
using System.Runtime.InteropServices;
using System.Text;
using System.Text.RegularExpressions;

namespace Trunkline.Tests
{
    public sealed class CType
    {
        public string Base;    // "uint32_t", "trunkline_session", ...
        public int Pointers;   // number of '*'
        public bool Const;     // const on the pointee
        public string ArrayLen; // for array fields: the length expression

        public override string ToString()
        {
            return (Const ? "const " : "") + Base + new string('*', Pointers) + (ArrayLen != null ? "[" + ArrayLen + "]" : "");
        }
    }

    public sealed class CField
    {
        public string Name;
        public CType Type;
    }

    public sealed class CFunction
    {
        public string Name;
        public CType Return;
        public List<CField> Params = new List<CField>();
        public bool TestHook;
    }

    public sealed class CHeader
    {
        public Dictionary<string, CFunction> Functions = new Dictionary<string, CFunction>();
        public Dictionary<string, List<CField>> Structs = new Dictionary<string, List<CField>>();
        public HashSet<string> Opaque = new HashSet<string>();
        public Dictionary<string, List<KeyValuePair<string, long>>> Enums = new Dictionary<string, List<KeyValuePair<string, long>>>();
        public Dictionary<string, string> Defines = new Dictionary<string, string>();
        /// <summary>The integer type each fixed-size enum is (its typedef before C23).</summary>
        public Dictionary<string, string> EnumTypes = new Dictionary<string, string>();

        /// <summary>Parses the header as a C11 compiler (not C++, not C23) sees it. Declarations
        /// under TRUNKLINE_TEST_HOOKS are marked as test hooks; those under the other feature
        /// defines (TRUNKLINE_SERVER) are read as declared, which the default build does.</summary>
        public static CHeader Parse(string text)
        {
            var h = new CHeader();
            text = Regex.Replace(text, @"/\*.*?\*/", " ", RegexOptions.Singleline);
            var normal = new StringBuilder();
            var hooks = new StringBuilder();
            // Each open #if: whether its lines are read, and its condition.
            var conditions = new Stack<KeyValuePair<string, bool>>();
            foreach (var raw in text.Split('\n'))
            {
                var line = raw;
                int comment = line.IndexOf("//", StringComparison.Ordinal);
                if (comment >= 0) line = line.Substring(0, comment);
                var t = line.Trim();
                bool active = conditions.All(c => c.Value);
                if (t.StartsWith("#", StringComparison.Ordinal))
                {
                    var m = Regex.Match(t, @"^#\s*(\w+)\s*(.*)$");
                    var directive = m.Groups[1].Value;
                    var rest = m.Groups[2].Value.Trim();
                    if (directive == "if" || directive == "ifdef" || directive == "ifndef")
                        conditions.Push(new KeyValuePair<string, bool>(directive + " " + rest, Taken(directive, rest)));
                    else if (directive == "else")
                    {
                        var top = conditions.Pop();
                        conditions.Push(new KeyValuePair<string, bool>(top.Key, !top.Value));
                    }
                    else if (directive == "endif") conditions.Pop();
                    else if (directive == "define" && active)
                    {
                        var d = Regex.Match(rest, @"^(\w+)\s*(.*)$");
                        h.Defines[d.Groups[1].Value] = d.Groups[2].Value.Trim();
                    }
                    continue;
                }
                if (!active) continue;
                (conditions.Any(c => c.Key.Contains("TRUNKLINE_TEST_HOOKS")) ? hooks : normal).Append(line).Append('\n');
            }
            if (conditions.Count != 0) throw new FormatException("unterminated #if");
            h.ParseDeclarations(normal.ToString(), false);
            h.ParseDeclarations(hooks.ToString(), true);
            foreach (var e in h.EnumTypes.Keys.Where(e => !h.Enums.ContainsKey(e)))
                throw new FormatException("typedef " + e + " is not an enum of the header");
            return h;
        }

        /// <summary>Whether a C11 compiler reads the lines after this #if/#ifdef/#ifndef.</summary>
        static bool Taken(string directive, string condition)
        {
            if (condition == "__cplusplus") return directive == "ifndef";
            if (directive == "ifndef") return true; // the include guard
            if (Regex.IsMatch(condition, @"^defined\(TRUNKLINE_\w+\)$")) return true; // features: read both
            if (Regex.IsMatch(condition, @"^!defined\(TRUNKLINE_NO_SERVER\)\s*&&\s*!defined\(TRUNKLINE_SERVER\)$")) return true;
            // The C++ / C23 spelling of a fixed-size enum, and C23's typedef of it.
            if (Regex.IsMatch(condition, @"^(defined\(__cplusplus\)\s*\|\|\s*)?__STDC_VERSION__\s*>=\s*202311L$")) return false;
            throw new FormatException("unsupported preprocessor condition: #" + directive + " " + condition);
        }

        void ParseDeclarations(string text, bool testHooks)
        {
            foreach (Match m in Regex.Matches(text, @"typedef\s+enum\s*\w*\s*\{([^}]*)\}\s*(\w+)\s*;"))
                Enums[m.Groups[2].Value] = EnumValues(m.Groups[1].Value);
            // A fixed-size enum before C23: `enum NAME { ... };` and `typedef uint32_t NAME;`.
            foreach (Match m in Regex.Matches(text, @"(?<!typedef\s+)\benum\s+(\w+)\s*\{([^}]*)\}\s*;"))
                Enums[m.Groups[1].Value] = EnumValues(m.Groups[2].Value);
            foreach (Match m in Regex.Matches(text, @"typedef\s+(u?int\d+_t)\s+(\w+)\s*;"))
                EnumTypes[m.Groups[2].Value] = m.Groups[1].Value;
            foreach (Match m in Regex.Matches(text, @"typedef\s+struct\s*\w*\s*\{([^}]*)\}\s*(\w+)\s*;"))
            {
                var fields = new List<CField>();
                foreach (var decl in m.Groups[1].Value.Split(';').Select(s => s.Trim()).Where(s => s.Length > 0))
                    fields.Add(ParseDecl(decl));
                Structs[m.Groups[2].Value] = fields;
            }
            foreach (Match m in Regex.Matches(text, @"typedef\s+struct\s+(\w+)\s+(\w+)\s*;"))
                Opaque.Add(m.Groups[2].Value);
            var rest = Regex.Replace(text, @"typedef[^;{]*(\{[^}]*\})?[^;]*;", " ");
            rest = Regex.Replace(rest, @"\benum\s+\w+\s*\{[^}]*\}\s*;", " ");
            foreach (Match m in Regex.Matches(rest, @"([A-Za-z_][\w\s\*]*?)\b(trunkline_\w+)\s*\(([^)]*)\)\s*;"))
            {
                var f = new CFunction { Name = m.Groups[2].Value, Return = ParseType(m.Groups[1].Value), TestHook = testHooks };
                var ps = m.Groups[3].Value.Trim();
                if (ps != "void" && ps.Length > 0)
                    foreach (var p in ps.Split(',')) f.Params.Add(ParseDecl(p.Trim()));
                Functions[f.Name] = f;
            }
        }

        static List<KeyValuePair<string, long>> EnumValues(string body)
        {
            var values = new List<KeyValuePair<string, long>>();
            long next = 0;
            foreach (var item in body.Split(',').Select(s => s.Trim()).Where(s => s.Length > 0))
            {
                var kv = Regex.Match(item, @"^(\w+)\s*(?:=\s*(-?\w+))?$");
                if (!kv.Success) throw new FormatException("enum item: " + item);
                if (kv.Groups[2].Success) next = ParseInt(kv.Groups[2].Value);
                values.Add(new KeyValuePair<string, long>(kv.Groups[1].Value, next));
                next++;
            }
            return values;
        }

        static long ParseInt(string s)
        {
            return s.StartsWith("0x", StringComparison.OrdinalIgnoreCase) ? Convert.ToInt64(s.Substring(2), 16) : long.Parse(s);
        }

        /// <summary>"const uint8_t *data" or "char name[N + 1]".</summary>
        public static CField ParseDecl(string decl)
        {
            string arrayLen = null;
            var arr = Regex.Match(decl, @"^(.*?)\[([^\]]*)\]\s*$");
            if (arr.Success)
            {
                decl = arr.Groups[1].Value;
                arrayLen = arr.Groups[2].Value.Trim();
            }
            var m = Regex.Match(decl, @"^(.*?)(\w+)\s*$", RegexOptions.Singleline);
            var type = ParseType(m.Groups[1].Value);
            type.ArrayLen = arrayLen;
            return new CField { Name = m.Groups[2].Value, Type = type };
        }

        public static CType ParseType(string s)
        {
            var t = new CType { Pointers = s.Count(c => c == '*') };
            var words = Regex.Matches(s, @"\w+").Cast<Match>().Select(x => x.Value).ToList();
            // `const char *const *`: an input array of input strings.
            t.Const = words.RemoveAll(w => w == "const") > 0;
            words.Remove("struct");
            words.Remove("enum");
            t.Base = string.Join(" ", words);
            return t;
        }
    }

    public static class HeaderDriftTests
    {
        static readonly Dictionary<string, Type> Scalars = new Dictionary<string, Type>
        {
            { "void", typeof(void) }, { "bool", typeof(bool) }, { "char", typeof(byte) },
            { "int8_t", typeof(sbyte) }, { "uint8_t", typeof(byte) }, { "int16_t", typeof(short) },
            { "uint16_t", typeof(ushort) }, { "int32_t", typeof(int) }, { "uint32_t", typeof(uint) },
            { "int64_t", typeof(long) }, { "uint64_t", typeof(ulong) },
            // size_t is `nuint` on .NET 8, which is System.UIntPtr at run time (and the Mono alias).
            { "size_t", typeof(UIntPtr) }, { "uintptr_t", typeof(UIntPtr) }, { "intptr_t", typeof(IntPtr) },
        };

        static readonly Assembly Lib = typeof(Engine).Assembly;

        static Dictionary<string, Type> CNamed()
        {
            var d = new Dictionary<string, Type>();
            var attr = Lib.GetType("Trunkline.CNameAttribute", true);
            foreach (var t in Lib.GetTypes())
            {
                var a = t.GetCustomAttributes(attr, false).FirstOrDefault();
                if (a != null) d[(string)attr.GetProperty("Name").GetValue(a, null)] = t;
            }
            // The handles name the opaque types they own.
            d["trunkline_engine"] = typeof(EngineHandle);
            d["trunkline_session"] = typeof(SessionHandle);
            d["trunkline_server"] = typeof(ServerHandle);
            d["trunkline_vad"] = typeof(VadHandle);
            return d;
        }

        public static string Screaming(string pascal)
        {
            return Regex.Replace(pascal, @"(?<=[a-z0-9])(?=[A-Z])", "_").ToUpperInvariant();
        }

        static bool HasU1(ICustomAttributeProvider p)
        {
            return p.GetCustomAttributes(typeof(MarshalAsAttribute), false).Cast<MarshalAsAttribute>().Any(a => a.Value == UnmanagedType.U1);
        }

        sealed class Checker
        {
            public readonly List<string> Errors = new List<string>();
            public readonly List<string> Notes = new List<string>();
            public CHeader Header;
            public Dictionary<string, Type> Named;
            public Dictionary<string, List<CField>> Structs;
            public Dictionary<string, List<KeyValuePair<string, long>>> Enums;
            public HashSet<string> Opaque;

            /// <summary>Null if the C# type (with its marshalling attributes) matches the C type.</summary>
            /// <summary>Null if the C# enum's underlying type is the C enum's fixed integer type.</summary>
            public string EnumStorage(string cname, Type e)
            {
                string ctype;
                if (!Header.EnumTypes.TryGetValue(cname, out ctype)) return "enum " + cname + " has no fixed-size typedef in the header (its size is the compiler's choice)";
                Type want;
                if (!Scalars.TryGetValue(ctype, out want) || Enum.GetUnderlyingType(e) != want)
                    return "enum " + e.Name + " is " + Enum.GetUnderlyingType(e).Name + ", the header's " + cname + " is " + ctype;
                return null;
            }

            public string Match(CType c, Type t, ICustomAttributeProvider attrs, bool isOut)
            {
                Type named;
                Named.TryGetValue(c.Base, out named);
                bool opaque = Opaque.Contains(c.Base) && !Structs.ContainsKey(c.Base);
                if (c.Pointers == 0)
                {
                    Type scalar;
                    if (Scalars.TryGetValue(c.Base, out scalar))
                    {
                        if (t != scalar && !(c.Base == "char" && t == typeof(sbyte))) return "expected " + scalar.Name;
                        if (t == typeof(bool) && !HasU1(attrs)) return "bool without [MarshalAs(UnmanagedType.U1)]";
                        return null;
                    }
                    if (Enums.ContainsKey(c.Base))
                    {
                        if (named == null || !named.IsEnum) return "no C# enum with [CName(\"" + c.Base + "\")]";
                        if (t != named) return "expected enum " + named.Name;
                        return EnumStorage(c.Base, named);
                    }
                    if (Structs.ContainsKey(c.Base))
                    {
                        if (named == null || t != named) return "expected struct with [CName(\"" + c.Base + "\")]";
                        return null;
                    }
                    return "unknown C type " + c.Base;
                }
                if (c.Pointers == 1 && (opaque || (named != null && typeof(SafeHandle).IsAssignableFrom(named))))
                {
                    if (t == typeof(IntPtr)) return null;
                    if (named != null && t == named && typeof(SafeHandle).IsAssignableFrom(named)) return null;
                    return "expected " + (named != null ? named.Name : "a SafeHandle") + " or IntPtr";
                }
                if (c.Pointers == 2 && named != null && typeof(SafeHandle).IsAssignableFrom(named))
                {
                    if (t.IsByRef && t.GetElementType() == named)
                    {
                        if (c.Const) return "const handle out-parameter";
                        return isOut ? null : "a handle out-parameter must be `out`";
                    }
                    return "expected out " + named.Name;
                }
                if (t == typeof(IntPtr)) return null;
                var pointee = new CType { Base = c.Base, Pointers = c.Pointers - 1 };
                Type element = null;
                if (t.IsPointer || t.IsArray) element = t.GetElementType();
                else if (t.IsByRef)
                {
                    element = t.GetElementType();
                    if (c.Const && isOut) return "`out` for a const (input) pointer";
                }
                if (element == null) return "expected a pointer, array, ref/out or IntPtr for " + c;
                if (element == typeof(bool)) return "bool by reference (marshalling is not one byte)";
                var inner = Match(pointee, element, attrs, false);
                return inner == null ? null : "pointee: " + inner;
            }

            public void CheckFunction(CFunction f, MethodInfo m)
            {
                var where = f.Name;
                var dll = (DllImportAttribute)m.GetCustomAttributes(typeof(DllImportAttribute), false).FirstOrDefault();
                if (dll == null) { Errors.Add(where + ": not a DllImport"); return; }
                if ((dll.EntryPoint ?? m.Name) != f.Name) Errors.Add(where + ": entry point " + dll.EntryPoint);
                if (dll.CallingConvention != CallingConvention.Cdecl) Errors.Add(where + ": calling convention " + dll.CallingConvention);
                var r = Match(f.Return, m.ReturnType, m.ReturnParameter, false);
                if (r != null) Errors.Add(where + ": returns " + f.Return + " but C# " + m.ReturnType.Name + ": " + r);
                var ps = m.GetParameters();
                if (ps.Length != f.Params.Count)
                {
                    Errors.Add(where + ": " + f.Params.Count + " parameters in C, " + ps.Length + " in C#");
                    return;
                }
                // A struct that begins with its struct_size, passed to a function that takes no
                // struct_size of its own (as the _default functions do), is an output the caller
                // sizes: `ref`, so that the struct_size it set reaches the library (`out` need not).
                bool takesSize = f.Params.Any(p => p.Name == "struct_size");
                for (int i = 0; i < ps.Length; i++)
                {
                    var c = f.Params[i];
                    if (ps[i].Name != c.Name) Errors.Add(where + ": parameter " + i + " is `" + c.Name + "` in C, `" + ps[i].Name + "` in C#");
                    var e = Match(c.Type, ps[i].ParameterType, ps[i], ps[i].IsOut);
                    if (e != null) Errors.Add(where + ": parameter " + c.Name + " (" + c.Type + ") vs " + ps[i].ParameterType.Name + ": " + e);
                    List<CField> fields;
                    bool sized = c.Type.Pointers == 1 && !c.Type.Const && Structs.TryGetValue(c.Type.Base, out fields)
                        && fields.Count > 0 && fields[0].Name == "struct_size";
                    if (sized && !takesSize && (!ps[i].ParameterType.IsByRef || ps[i].IsOut))
                        Errors.Add(where + ": parameter " + c.Name + " (" + c.Type + ") must be `ref`: the caller sets its struct_size");
                }
            }

            int SizeOf(CType c, out int align)
            {
                if (c.Pointers > 0) { align = IntPtr.Size; return IntPtr.Size; }
                int n;
                switch (c.Base)
                {
                    case "bool": case "char": case "int8_t": case "uint8_t": n = 1; break;
                    case "int16_t": case "uint16_t": n = 2; break;
                    case "int32_t": case "uint32_t": n = 4; break;
                    case "int64_t": case "uint64_t": n = 8; break;
                    case "size_t": case "intptr_t": case "uintptr_t": n = IntPtr.Size; break;
                    default:
                        if (Enums.ContainsKey(c.Base))
                        {
                            string ctype;
                            n = Header.EnumTypes.TryGetValue(c.Base, out ctype) ? Marshal.SizeOf(Scalars[ctype]) : 4;
                            break;
                        }
                        if (Structs.ContainsKey(c.Base))
                        {
                            // A nested struct: laid out by the same C rules, recursively.
                            n = Layout(Structs[c.Base], out align);
                            return n * (c.ArrayLen != null ? EvalLength(c.ArrayLen) : 1);
                        }
                        throw new InvalidOperationException("no size for " + c.Base);
                }
                align = n;
                return n * (c.ArrayLen != null ? EvalLength(c.ArrayLen) : 1);
            }

            /// <summary>The C size and alignment of a struct with these fields.</summary>
            int Layout(List<CField> fields, out int maxAlign)
            {
                int offset = 0;
                maxAlign = 1;
                foreach (var f in fields)
                {
                    int align;
                    int size = SizeOf(f.Type, out align);
                    offset = (offset + align - 1) / align * align + size;
                    maxAlign = Math.Max(maxAlign, align);
                }
                return (offset + maxAlign - 1) / maxAlign * maxAlign;
            }

            public int EvalLength(string expr)
            {
                int total = 0;
                foreach (var term in expr.Split('+').Select(s => s.Trim()))
                {
                    string v;
                    total += Header.Defines.TryGetValue(term, out v) ? EvalLength(v) : int.Parse(term);
                }
                return total;
            }

            public void CheckStruct(string name, List<CField> fields, string source)
            {
                var where = name + " (" + source + ")";
                Type t;
                if (!Named.TryGetValue(name, out t)) { Errors.Add(where + ": no C# struct with [CName(\"" + name + "\")]"); return; }
                if (!t.IsValueType || !t.IsLayoutSequential) Errors.Add(where + ": " + t.Name + " must be a sequential struct");
                var cs = t.GetFields(BindingFlags.Instance | BindingFlags.Public | BindingFlags.NonPublic).OrderBy(f => f.MetadataToken).ToList();
                if (cs.Count != fields.Count)
                    Errors.Add(where + ": " + fields.Count + " fields in C [" + string.Join(", ", fields.Select(f => f.Name)) + "], "
                        + cs.Count + " in C# [" + string.Join(", ", cs.Select(f => f.Name)) + "]");
                int offset = 0, maxAlign = 1;
                for (int i = 0; i < fields.Count; i++)
                {
                    var c = fields[i];
                    int align;
                    int size = SizeOf(c.Type, out align);
                    offset = (offset + align - 1) / align * align;
                    maxAlign = Math.Max(maxAlign, align);
                    if (i < cs.Count)
                    {
                        var f = cs[i];
                        if (f.Name != c.Name) Errors.Add(where + ": field " + i + " is `" + c.Name + "` in C, `" + f.Name + "` in C#");
                        string e;
                        if (c.Type.ArrayLen != null)
                        {
                            var fb = (System.Runtime.CompilerServices.FixedBufferAttribute)f.GetCustomAttributes(typeof(System.Runtime.CompilerServices.FixedBufferAttribute), false).FirstOrDefault();
                            if (fb == null) e = "expected a fixed buffer";
                            else if (fb.Length != EvalLength(c.Type.ArrayLen)) e = "length " + fb.Length + ", C " + EvalLength(c.Type.ArrayLen);
                            else e = Match(new CType { Base = c.Type.Base }, fb.ElementType, f, false);
                        }
                        else e = Match(c.Type, f.FieldType, f, false);
                        if (e != null) Errors.Add(where + ": field " + c.Name + " (" + c.Type + ") vs " + f.FieldType.Name + ": " + e);
                        var actual = (int)Marshal.OffsetOf(t, f.Name);
                        if (actual != offset) Errors.Add(where + ": field " + c.Name + " at offset " + actual + ", C puts it at " + offset);
                    }
                    offset += size;
                }
                int cSize = (offset + maxAlign - 1) / maxAlign * maxAlign;
                if (Marshal.SizeOf(t) != cSize) Errors.Add(where + ": size " + Marshal.SizeOf(t) + ", C " + cSize);
            }

            public void CheckEnum(string name, List<KeyValuePair<string, long>> values, string source)
            {
                var where = name + " (" + source + ")";
                Type t;
                if (!Named.TryGetValue(name, out t) || !t.IsEnum) { Errors.Add(where + ": no C# enum with [CName(\"" + name + "\")]"); return; }
                var storage = EnumStorage(name, t);
                if (storage != null) Errors.Add(where + ": " + storage);
                var prefix = name.ToUpperInvariant() + "_";
                var cs = Enum.GetNames(t).ToDictionary(n => prefix + Screaming(n), n => Convert.ToInt64(Enum.Parse(t, n)));
                foreach (var kv in values)
                {
                    long v;
                    if (!cs.TryGetValue(kv.Key, out v)) Errors.Add(where + ": " + kv.Key + " = " + kv.Value + " has no C# member");
                    else if (v != kv.Value) Errors.Add(where + ": " + kv.Key + " is " + kv.Value + " in C, " + v + " in C#");
                }
                foreach (var n in cs.Keys.Where(k => values.All(kv => kv.Key != k)))
                    Errors.Add(where + ": C# member for " + n + " is not in C");
            }
        }

        static string HeaderText()
        {
            return File.ReadAllText(Repo.PathOf("include", "trunkline.h"));
        }

        static Checker Check(CHeader header)
        {
            var ck = new Checker
            {
                Header = header,
                Named = CNamed(),
                Structs = header.Structs,
                Enums = header.Enums,
                Opaque = header.Opaque,
            };
            var functions = header.Functions.Values.ToList();

            // An opaque type other than the handles would be passed around unchecked.
            foreach (var o in header.Opaque.Where(o => o != "trunkline_engine" && o != "trunkline_session" && o != "trunkline_server" && o != "trunkline_vad"))
                ck.Errors.Add(o + " is opaque in the header: its fields cannot be checked");
            foreach (var n in ck.Named.Keys.Where(n => !header.Structs.ContainsKey(n) && !header.Enums.ContainsKey(n) && !header.Opaque.Contains(n)))
                ck.Errors.Add("C# " + ck.Named[n].Name + " mirrors " + n + ", which the header does not declare");

            foreach (var s in ck.Structs) ck.CheckStruct(s.Key, s.Value, "include/trunkline.h");
            foreach (var e in ck.Enums) ck.CheckEnum(e.Key, e.Value, "include/trunkline.h");

            var native = Lib.GetType("Trunkline.Native", true);
            var bound = native.GetMethods(BindingFlags.Static | BindingFlags.Public | BindingFlags.NonPublic)
                .Where(m => m.GetCustomAttributes(typeof(DllImportAttribute), false).Length > 0)
                .ToDictionary(m => m.Name);
            foreach (var f in functions)
            {
                MethodInfo m;
                if (!bound.TryGetValue(f.Name, out m))
                {
                    if (f.TestHook) ck.Notes.Add("not bound (test hook, absent from the shipped library): " + f.Name);
                    else ck.Errors.Add(f.Name + " is not bound");
                    continue;
                }
                ck.CheckFunction(f, m);
            }
            foreach (var name in bound.Keys.Where(n => functions.All(f => f.Name != n)))
                ck.Errors.Add(name + " is bound but the header does not declare it");

            // Macros.
            string version;
            if (!header.Defines.TryGetValue("TRUNKLINE_VERSION", out version)) ck.Errors.Add("TRUNKLINE_VERSION missing");
            else if (version.Trim('"') != Library.HeaderVersion) ck.Errors.Add("TRUNKLINE_VERSION " + version + " vs Library.HeaderVersion " + Library.HeaderVersion);
            var maxName = (int)native.GetField("MaxNameBytes", BindingFlags.Static | BindingFlags.Public | BindingFlags.NonPublic).GetValue(null);
            if (!header.Defines.ContainsKey("TRUNKLINE_MAX_NAME_BYTES") || ck.EvalLength("TRUNKLINE_MAX_NAME_BYTES") != maxName)
                ck.Errors.Add("TRUNKLINE_MAX_NAME_BYTES vs Native.MaxNameBytes " + maxName);
            foreach (var format in new[] { new[] { "TRUNKLINE_METRICS_PROMETHEUS", "MetricsPrometheus" }, new[] { "TRUNKLINE_METRICS_OPENMETRICS", "MetricsOpenMetrics" } })
            {
                var value = (uint)native.GetField(format[1], BindingFlags.Static | BindingFlags.Public | BindingFlags.NonPublic).GetValue(null);
                if (!header.Defines.ContainsKey(format[0]) || ck.EvalLength(format[0]) != value)
                    ck.Errors.Add(format[0] + " vs Native." + format[1] + " " + value);
            }
            var tagCapacity = (int)Lib.GetType("Trunkline.NativeEvent", true).GetField("SegmentTagCapacity", BindingFlags.Static | BindingFlags.Public | BindingFlags.NonPublic).GetValue(null);
            if (!header.Defines.ContainsKey("TRUNKLINE_SEGMENT_TAG_CAPACITY") || ck.EvalLength("TRUNKLINE_SEGMENT_TAG_CAPACITY") != tagCapacity)
                ck.Errors.Add("TRUNKLINE_SEGMENT_TAG_CAPACITY vs NativeEvent.SegmentTagCapacity " + tagCapacity);
            var codec = Lib.GetType("Trunkline.EncodedCodec", true);
            foreach (var c in new[] { new[] { "TRUNKLINE_CODEC_OGG_OPUS", "OggOpus" }, new[] { "TRUNKLINE_CODEC_OPUS", "Opus" } })
            {
                var value = (uint)Enum.Parse(codec, c[1]);
                if (!header.Defines.ContainsKey(c[0]) || ck.EvalLength(c[0]) != value)
                    ck.Errors.Add(c[0] + " vs EncodedCodec." + c[1] + " " + value);
            }
            return ck;
        }

        public static void TestHeaderMatchesPInvokeDeclarations()
        {
            var ck = Check(CHeader.Parse(HeaderText()));
            foreach (var n in ck.Notes) Console.WriteLine("     note: " + n);
            Assert.True(ck.Errors.Count == 0, ck.Errors.Count + " differences between include/trunkline.h and the P/Invoke declarations:\n" + string.Join("\n", ck.Errors));
        }

        public static void TestHeaderParserSeesEveryPrototype()
        {
            // Guards the check itself: a parser that found nothing would pass vacuously.
            var text = HeaderText();
            var header = CHeader.Parse(text);
            int prototypes = Regex.Matches(text, @"^[A-Za-z_][^(]*\btrunkline_\w+\s*\(", RegexOptions.Multiline).Count;
            Assert.Equal(prototypes, header.Functions.Count, "prototypes parsed");
            Assert.True(header.Functions.Count >= 28, "at least the 28 functions of the first ABI, got " + header.Functions.Count);
            Assert.True(header.Structs.ContainsKey("trunkline_session_config") && header.Structs["trunkline_session_config"].Count >= 20, "session config fields");
            int results = Regex.Matches(text, @"^\s*TRUNKLINE_RESULT_\w+ = \d+,", RegexOptions.Multiline).Count;
            Assert.True(results >= 13, "at least the 13 results of the first ABIs, got " + results);
            Assert.Equal(results, header.Enums["trunkline_result"].Count, "trunkline_result values");
            var server = header.Structs["trunkline_server_config"];
            Assert.Equal("const char*", server.First(f => f.Name == "bind").Type.ToString(), "trunkline_server_config.bind");
            Assert.Equal("const trunkline_session_config*", server.First(f => f.Name == "session").Type.ToString(), "trunkline_server_config.session");
            foreach (var e in header.Enums.Keys)
            {
                string ctype;
                Assert.True(header.EnumTypes.TryGetValue(e, out ctype) && ctype == "uint32_t", e + " is a uint32_t");
            }
            foreach (var c in header.Structs.Keys) // configs and output structs alike
                Assert.Equal("struct_size", header.Structs[c][0].Name, c + " begins with struct_size");
            Assert.Equal(8, header.Structs.Count, "structs");
            Assert.True(header.Functions.ContainsKey("trunkline_server_start") && !header.Functions["trunkline_server_start"].TestHook, "the server API is declared by default");
            Assert.True(header.Opaque.Contains("trunkline_server"), "trunkline_server is opaque");
        }

        public static void TestDriftCheckCatchesDifferences()
        {
            // The same checker against doctored headers: each change must be reported.
            var original = HeaderText();
            Assert.Equal(0, Check(CHeader.Parse(original)).Errors.Count, "errors for the real header");
            var cases = new[]
            {
                new[] { "size_t capacity,\n                                              size_t *out_samples", "uint32_t capacity,\n                                              size_t *out_samples" },
                new[] { "TRUNKLINE_RESULT_TIMEOUT = 11", "TRUNKLINE_RESULT_TIMEOUT = 12" },
                new[] { "  uint32_t lead_ms;\n", "  uint64_t lead_ms;\n" },
                new[] { "  bool barge_in_enabled;\n  // Voiced", "  // Voiced" },
                new[] { "const char *trunkline_version(void);", "const char *trunkline_version(void);\nvoid trunkline_session_rewind(trunkline_session *session);" },
                new[] { "#define TRUNKLINE_EVENT_NAME_CAPACITY 256", "#define TRUNKLINE_EVENT_NAME_CAPACITY 255" },
                new[] { "  uint64_t stream_ms;\n  // Played", "  uint32_t stream_ms;\n  // Played" },
                new[] { "TRUNKLINE_EVENT_KIND_STOPPED = 10,", "TRUNKLINE_EVENT_KIND_STOPPED = 10,\n  TRUNKLINE_EVENT_KIND_HANGUP = 12," },
                new[] { "trunkline_result trunkline_session_interrupt(trunkline_session *session);", "trunkline_result trunkline_session_interrupt(trunkline_session *session, bool hard);" },
                // The offload server: its functions, string fields, the nested session config.
                new[] { "uint32_t grace_ms", "uint64_t grace_ms", "trunkline_server_shutdown: parameter grace_ms" },
                new[] { "  const char *public_url;\n", "  uint64_t public_url;\n", "trunkline_server_config (include/trunkline.h): field public_url" },
                new[] { "  const char *tls_key_pem;\n", "  const char *tls_key_pem;\n  const char *tls_ca_pem;\n", "trunkline_server_config (include/trunkline.h): 18 fields in C" },
                new[] { "  const trunkline_session_config *session;\n", "  const trunkline_engine_config *session;\n", "trunkline_server_config (include/trunkline.h): field session" },
                // Versioned configs: a setting appended, a struct_size gone (every later field moves).
                new[] { "  const char *dialect;\n", "  const char *dialect;\n  uint32_t new_setting;\n", "trunkline_session_config (include/trunkline.h): " + (CHeader.Parse(original).Structs["trunkline_session_config"].Count + 1) + " fields in C" },
                new[] { "  size_t struct_size;\n  // Worker", "  // Worker", "trunkline_engine_config (include/trunkline.h): field 0 is `workers` in C, `struct_size` in C#" },
                // Enums of a fixed size: a uint32_t, as the C# enums' underlying type.
                new[] { "typedef uint32_t trunkline_event_kind;", "typedef uint16_t trunkline_event_kind;", "the header's trunkline_event_kind is uint16_t" },
                new[] { "#else\ntypedef uint32_t trunkline_result;\n", "#else\n", "trunkline_result has no fixed-size typedef" },
                new[] { "trunkline_result trunkline_server_accept(const trunkline_server *server, trunkline_session **out);", "trunkline_result trunkline_server_accept(const trunkline_server *server, trunkline_server **out);", "trunkline_server_accept: parameter out" },
                // Output structs: their struct_size, the enum typed field, the start fields' names.
                new[] { "  size_t struct_size;\n  // What happened.", "  // What happened.", "trunkline_event (include/trunkline.h): field 0 is `kind` in C, `struct_size` in C#" },
                new[] { "  trunkline_audio_encoding encoding;\n", "  uint32_t encoding;\n", "trunkline_start_info (include/trunkline.h): field encoding" },
                new[] { "TRUNKLINE_START_FIELD_CALL_ID = 0", "TRUNKLINE_START_FIELD_CALL_SID = 0", "TRUNKLINE_START_FIELD_CALL_SID = 0 has no C# member" },
                // An `out` struct the caller sizes: a _default function that loses its own struct_size
                // parameter leaves its `out` config to be sized by the caller, which `out` cannot do.
                new[] { "trunkline_engine_config_default(trunkline_engine_config *out, size_t struct_size);", "trunkline_engine_config_default(trunkline_engine_config *out, size_t size);", "parameter out (trunkline_engine_config*) must be `ref`" },
            };
            foreach (var c in cases)
            {
                Assert.True(original.Contains(c[0]), "test case no longer applies to the header: " + c[0]);
                var header = CHeader.Parse(original.Replace(c[0], c[1]));
                var errors = Check(header).Errors;
                Assert.True(errors.Count > 0, "a doctored header passed: " + c[1]);
                if (c.Length > 2)
                    Assert.True(errors.Any(e => e.Contains(c[2])), "expected an error about `" + c[2] + "` for " + c[1] + ", got:\n" + string.Join("\n", errors));
                Console.WriteLine("     caught: " + (errors[0].Length > 150 ? errors[0].Substring(0, 150) + "…" : errors[0]));
            }
        }
    }
}
