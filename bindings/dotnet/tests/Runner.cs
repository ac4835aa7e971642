// A plain console test runner (no NuGet here): every public static method named Test* on the test
// classes is a test; async tests return Task. The last line printed is "N passed, M failed" and the
// exit code is the number of failures (capped).
using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.IO;
using System.Linq;
using System.Reflection;
using System.Threading.Tasks;

namespace Trunkline.Tests
{
    public sealed class AssertionException : Exception
    {
        public AssertionException(string message) : base(message) { }
    }

    public static class Assert
    {
        public static void True(bool condition, string message)
        {
            if (!condition) throw new AssertionException(message);
        }

        public static void Equal<T>(T expected, T actual, string what)
        {
            if (!EqualityComparer<T>.Default.Equals(expected, actual))
                throw new AssertionException(what + ": expected <" + expected + ">, got <" + actual + ">");
        }

        public static void SequenceEqual<T>(IEnumerable<T> expected, IEnumerable<T> actual, string what)
        {
            var e = expected.ToList();
            var a = actual.ToList();
            if (!e.SequenceEqual(a))
                throw new AssertionException(what + ":\n  expected [" + string.Join(", ", e) + "]\n  got      [" + string.Join(", ", a) + "]");
        }

        public static TException Throws<TException>(Action action, string what) where TException : Exception
        {
            try
            {
                action();
            }
            catch (TException ex)
            {
                return ex;
            }
            catch (Exception ex)
            {
                throw new AssertionException(what + ": expected " + typeof(TException).Name + ", got " + ex.GetType().Name + ": " + ex.Message);
            }
            throw new AssertionException(what + ": expected " + typeof(TException).Name + ", nothing was thrown");
        }
    }

    public static class Repo
    {
        static string root;

        /// <summary>The repository root: $TRUNKLINE_ROOT, or the first parent of the working
        /// directory or of the test binary that holds include/trunkline.h.</summary>
        public static string Root
        {
            get
            {
                if (root != null) return root;
                var env = Environment.GetEnvironmentVariable("TRUNKLINE_ROOT");
                if (!string.IsNullOrEmpty(env)) return root = env;
                foreach (var start in new[] { Directory.GetCurrentDirectory(), AppDomain.CurrentDomain.BaseDirectory })
                {
                    for (var d = new DirectoryInfo(start); d != null; d = d.Parent)
                        if (File.Exists(Path.Combine(d.FullName, "include", "trunkline.h"))) return root = d.FullName;
                }
                throw new InvalidOperationException("cannot find the repository root (set TRUNKLINE_ROOT)");
            }
        }

        public static string PathOf(params string[] parts)
        {
            return Path.Combine(new[] { Root }.Concat(parts).ToArray());
        }
    }

    public static class Runner
    {
        public static int Main(string[] args)
        {
            var tests = typeof(Runner).Assembly.GetTypes()
                .Where(t => t.IsClass && t.Name.EndsWith("Tests", StringComparison.Ordinal))
                .OrderBy(t => t.Name, StringComparer.Ordinal)
                .SelectMany(t => t.GetMethods(BindingFlags.Public | BindingFlags.Static)
                    .Where(m => m.Name.StartsWith("Test", StringComparison.Ordinal) && m.GetParameters().Length == 0)
                    .OrderBy(m => m.MetadataToken))
                .Where(m => args.Length == 0 || args.Any(a => (m.DeclaringType.Name + "." + m.Name).Contains(a)))
                .ToList();
            int passed = 0, failed = 0;
            Console.WriteLine("Trunkline .NET binding tests, library " + Library.Version + ", runtime " + RuntimeName());
            foreach (var m in tests)
            {
                var name = m.DeclaringType.Name + "." + m.Name;
                var sw = Stopwatch.StartNew();
                try
                {
                    var result = m.Invoke(null, null);
                    var task = result as Task;
                    if (task != null && !task.Wait(TimeSpan.FromSeconds(30)))
                        throw new AssertionException("timed out after 30 s");
                    if (task != null) task.GetAwaiter().GetResult();
                    passed++;
                    Console.WriteLine("ok   " + name + " (" + sw.ElapsedMilliseconds + " ms)");
                }
                catch (Exception ex)
                {
                    var e = ex;
                    while ((e is TargetInvocationException || e is AggregateException) && e.InnerException != null) e = e.InnerException;
                    failed++;
                    Console.WriteLine("FAIL " + name + " (" + sw.ElapsedMilliseconds + " ms)\n     " + e.GetType().Name + ": " + e.Message.Replace("\n", "\n     "));
                    if (!(e is AssertionException)) Console.WriteLine(e.StackTrace);
                }
            }
            Console.WriteLine(passed + " passed, " + failed + " failed");
            return Math.Min(failed, 100);
        }

        static string RuntimeName()
        {
            var mono = Type.GetType("Mono.Runtime");
            if (mono != null)
            {
                var display = mono.GetMethod("GetDisplayName", BindingFlags.NonPublic | BindingFlags.Static);
                return "Mono " + (display != null ? display.Invoke(null, null) : "?");
            }
            return ".NET " + Environment.Version;
        }
    }
}
