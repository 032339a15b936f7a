// MSBuild inline task (RoslynCodeTaskFactory). See TorchSharpNative.targets for why it exists.
using System;
using System.Collections.Generic;
using System.IO;
using System.Text;
using Microsoft.Build.Framework;
using Microsoft.Build.Utilities;

namespace NextFlowRL.Build
{
    /// <summary>
    /// Marks the GLIBCXX_* version needs of ELF64 little-endian shared libraries weak when the machine's libstdc++
    /// does not define that version. Idempotent; files that need nothing are not rewritten.
    /// </summary>
    public class RelaxGlibcxxVersionNeeds : Task
    {
        private const uint ShtGnuVerneed = 0x6ffffffe;
        private const ushort VerFlgWeak = 0x2;

        [Required] public ITaskItem[] Files { get; set; }
        [Required] public string SystemLibStdCxx { get; set; }

        public override bool Execute()
        {
            byte[] system = File.ReadAllBytes(SystemLibStdCxx);
            foreach (ITaskItem item in Files)
            {
                string path = item.ItemSpec;
                try
                {
                    int relaxed = Relax(path, name => !Contains(system, Encoding.ASCII.GetBytes(name + "\0")));
                    if (relaxed > 0)
                    {
                        Log.LogMessage(MessageImportance.High,
                            "NextFlowRL: marked " + relaxed + " GLIBCXX version need(s) weak in " + path +
                            " (not provided by " + SystemLibStdCxx + ")");
                    }
                }
                catch (Exception e)
                {
                    Log.LogError("NextFlowRL: could not inspect " + path + ": " + e.Message);
                }
            }
            return !Log.HasLoggedErrors;
        }

        private static int Relax(string path, Func<string, bool> missing)
        {
            byte[] elf = File.ReadAllBytes(path);
            if (elf.Length < 64 || elf[0] != 0x7f || elf[1] != (byte)'E' || elf[2] != (byte)'L' || elf[3] != (byte)'F')
                throw new InvalidDataException("not an ELF file");
            if (elf[4] != 2 || elf[5] != 1)
                return 0; // only ELF64 little-endian is handled (linux-x64 / linux-arm64)

            long shoff = (long)BitConverter.ToUInt64(elf, 0x28);
            int shentsize = BitConverter.ToUInt16(elf, 0x3A);
            int shnum = BitConverter.ToUInt16(elf, 0x3C);
            int changed = 0;
            for (int s = 0; s < shnum; s++)
            {
                long sh = shoff + (long)s * shentsize;
                if (BitConverter.ToUInt32(elf, (int)sh + 4) != ShtGnuVerneed) continue;
                long offset = (long)BitConverter.ToUInt64(elf, (int)sh + 24);
                int link = (int)BitConverter.ToUInt32(elf, (int)sh + 40);
                int count = (int)BitConverter.ToUInt32(elf, (int)sh + 44);
                long strtab = (long)BitConverter.ToUInt64(elf, (int)(shoff + (long)link * shentsize + 24));

                long vn = offset;
                for (int n = 0; n < count; n++)
                {
                    int auxCount = BitConverter.ToUInt16(elf, (int)vn + 2);
                    long aux = vn + BitConverter.ToUInt32(elf, (int)vn + 8);
                    for (int a = 0; a < auxCount; a++)
                    {
                        ushort flags = BitConverter.ToUInt16(elf, (int)aux + 4);
                        string name = ReadString(elf, strtab + BitConverter.ToUInt32(elf, (int)aux + 8));
                        if (name.StartsWith("GLIBCXX_", StringComparison.Ordinal) && (flags & VerFlgWeak) == 0 && missing(name))
                        {
                            ushort weak = (ushort)(flags | VerFlgWeak);
                            elf[aux + 4] = (byte)(weak & 0xff);
                            elf[aux + 5] = (byte)(weak >> 8);
                            changed++;
                        }
                        aux += BitConverter.ToUInt32(elf, (int)aux + 12);
                    }
                    uint next = BitConverter.ToUInt32(elf, (int)vn + 12);
                    if (next == 0) break;
                    vn += next;
                }
            }
            if (changed > 0)
            {
                // Write beside and rename, so a concurrently starting process never sees a half-written library.
                string tmp = path + ".nextflow-tmp";
                File.WriteAllBytes(tmp, elf);
                File.Replace(tmp, path, null);
            }
            return changed;
        }

        private static string ReadString(byte[] data, long start)
        {
            long end = start;
            while (end < data.Length && data[end] != 0) end++;
            return Encoding.ASCII.GetString(data, (int)start, (int)(end - start));
        }

        private static bool Contains(byte[] haystack, byte[] needle)
        {
            for (int i = 0; i <= haystack.Length - needle.Length; i++)
            {
                int j = 0;
                while (j < needle.Length && haystack[i + j] == needle[j]) j++;
                if (j == needle.Length) return true;
            }
            return false;
        }
    }
}
