using Presence.Grains.Abstractions;
using static Presence.Grains.Abstractions.DeviceRules.Problems;

namespace Presence.Grains.Tests;

public sealed class DeviceRulesTests
{
    [Theory]
    [InlineData("a")]
    [InlineData("agent-42")]
    [InlineData("ABCXYZabcxyz0189")]
    [InlineData("_.:@-")]
    [InlineData("user@host:rack-3.node_7")]
    public void Device_id_accepts_the_allowed_characters(string id)
    {
        Assert.Null(DeviceRules.CheckDeviceId(id));
    }

    [Fact]
    public void Device_id_is_one_to_128_characters()
    {
        Assert.Equal(Empty, DeviceRules.CheckDeviceId(""));
        Assert.Null(DeviceRules.CheckDeviceId("x"));
        Assert.Null(DeviceRules.CheckDeviceId(new string('x', 128)));
        Assert.Equal(TooLong, DeviceRules.CheckDeviceId(new string('x', 129)));
    }

    [Theory]
    [InlineData("agent 42")]
    [InlineData("agent/42")]
    [InlineData("agent#42")]
    [InlineData("agent?42")]
    [InlineData("agent%2F")]
    [InlineData("agent+42")]
    [InlineData("agent=42")]
    [InlineData("agent~42")]
    [InlineData("agent,42")]
    [InlineData("agent\\42")]
    [InlineData("agent\"42")]
    [InlineData("agent*")]
    [InlineData("\t")]
    [InlineData("agent\0")]
    [InlineData("agent\u007f")]
    [InlineData("agént")]
    [InlineData("Ａgent")]
    [InlineData("agent\u0663")]
    [InlineData("\u212Aelvin")]
    [InlineData("agent\ud83d\ude00")]
    public void Device_id_rejects_every_other_character(string id)
    {
        Assert.Equal(InvalidCharacters, DeviceRules.CheckDeviceId(id));
    }

    [Fact]
    public void Device_id_of_129_allowed_characters_is_too_long_rather_than_invalid()
    {
        Assert.Equal(TooLong, DeviceRules.CheckDeviceId(new string('@', 129)));
    }

    [Fact]
    public void Device_name_is_checked_after_trimming()
    {
        Assert.Null(DeviceRules.CheckDeviceName("  Rack 3 agent  "));
        Assert.Equal("Rack 3 agent", DeviceRules.NormalizeDeviceName("  Rack 3 agent  "));
        Assert.Equal("Rack 3 agent", DeviceRules.NormalizeDeviceName("\t Rack 3 agent\n"));
        Assert.Equal(Empty, DeviceRules.CheckDeviceName(""));
        Assert.Equal(Empty, DeviceRules.CheckDeviceName("   "));
        Assert.Equal(Empty, DeviceRules.CheckDeviceName(" \t\r\n "));
    }

    [Fact]
    public void Device_name_is_one_to_128_characters_after_trimming()
    {
        Assert.Null(DeviceRules.CheckDeviceName("x"));
        Assert.Null(DeviceRules.CheckDeviceName(new string('x', 128)));
        Assert.Null(DeviceRules.CheckDeviceName("   " + new string('x', 128) + "   "));
        Assert.Equal(TooLong, DeviceRules.CheckDeviceName(new string('x', 129)));
        Assert.Equal(TooLong, DeviceRules.CheckDeviceName(" " + new string('x', 129) + " "));
    }

    [Theory]
    [InlineData("Rack 3 agent")]
    [InlineData("Küche – Schrank ¾")]
    [InlineData("机架三号")]
    [InlineData("agent \ud83d\ude80 rocket")]
    [InlineData("quotes \"'<>&")]
    public void Device_name_accepts_printable_unicode(string name)
    {
        Assert.Null(DeviceRules.CheckDeviceName(name));
    }

    [Theory]
    [InlineData("rack\0agent")]
    [InlineData("rack\tagent")]
    [InlineData("rack\nagent")]
    [InlineData("rack\u001fagent")]
    [InlineData("rack\u007fagent")]
    [InlineData("rack\u0085agent")]
    [InlineData("rack\u009fagent")]
    public void Device_name_rejects_control_characters(string name)
    {
        Assert.Equal(InvalidCharacters, DeviceRules.CheckDeviceName(name));
    }

    [Fact]
    public void Device_name_rejects_lone_surrogates()
    {
        // Not a theory: attribute arguments are stored as UTF-8, which cannot carry a lone surrogate.
        string[] names = ["rack\ud800agent", "rack\udc00agent", "rack\ude00\ud83d", "rack\ud83d", "\ude00rack", "rack\ud83d\ud83d\ude00"];
        Assert.All(names, name => Assert.Equal(InvalidCharacters, DeviceRules.CheckDeviceName(name)));
    }

    [Fact]
    public void Platform_is_one_to_32_lowercase_letters_digits_underscores_or_dashes()
    {
        Assert.Null(DeviceRules.CheckPlatform("linux"));
        Assert.Null(DeviceRules.CheckPlatform("android_14-arm64"));
        Assert.Null(DeviceRules.CheckPlatform(new string('x', 32)));
        Assert.Equal(TooLong, DeviceRules.CheckPlatform(new string('x', 33)));
        Assert.Equal(Empty, DeviceRules.CheckPlatform(""));
    }

    [Theory]
    [InlineData("Linux")]
    [InlineData("IOS")]
    [InlineData("linux 6")]
    [InlineData("linux.6")]
    [InlineData("linux:6")]
    [InlineData("linux@x")]
    [InlineData("línux")]
    public void Platform_rejects_other_characters(string platform)
    {
        Assert.Equal(InvalidCharacters, DeviceRules.CheckPlatform(platform));
    }

    [Fact]
    public void App_version_is_one_to_64_printable_characters()
    {
        Assert.Null(DeviceRules.CheckAppVersion("1.4.2"));
        Assert.Null(DeviceRules.CheckAppVersion("1.0.0-beta+exp.sha.5114f85 (build 7)"));
        Assert.Null(DeviceRules.CheckAppVersion(new string('9', 64)));
        Assert.Equal(TooLong, DeviceRules.CheckAppVersion(new string('9', 65)));
        Assert.Equal(Empty, DeviceRules.CheckAppVersion(""));
        Assert.Equal(InvalidCharacters, DeviceRules.CheckAppVersion("1.4\n"));
        Assert.Equal(InvalidCharacters, DeviceRules.CheckAppVersion("1.4\ud800"));
    }

    [Fact]
    public void Metric_key_is_one_to_64_lowercase_letters_digits_underscores_or_dots()
    {
        string[] keys = ["cpu_pct", "mem_pct", "mem_used_bytes", "disk_pct", "load1", "uptime_s", "net.eth0.rx", "x"];
        Assert.All(keys, key => Assert.Null(DeviceRules.CheckMetricKey(key)));

        Assert.Null(DeviceRules.CheckMetricKey(new string('k', 64)));
        Assert.Equal(TooLong, DeviceRules.CheckMetricKey(new string('k', 65)));
        Assert.Equal(Empty, DeviceRules.CheckMetricKey(""));
    }

    [Theory]
    [InlineData("CPU")]
    [InlineData("cpu-pct")]
    [InlineData("cpu pct")]
    [InlineData("cpu:pct")]
    [InlineData("cpu/pct")]
    [InlineData("cpü")]
    public void Metric_key_rejects_other_characters(string key)
    {
        Assert.Equal(InvalidCharacters, DeviceRules.CheckMetricKey(key));
    }

    [Fact]
    public void Collection_limits_are_those_of_the_contract()
    {
        Assert.Equal(32, DeviceRules.MaxMetrics);
        Assert.Equal(256, DeviceRules.MaxContainers);
        Assert.Equal(128, DeviceRules.MaxDeviceIdLength);
        Assert.Equal(128, DeviceRules.MaxDeviceNameLength);
        Assert.Equal(32, DeviceRules.MaxPlatformLength);
        Assert.Equal(64, DeviceRules.MaxAppVersionLength);
        Assert.Equal(64, DeviceRules.MaxMetricKeyLength);
    }

    [Fact]
    public void Printable_check_honours_its_bounds()
    {
        Assert.Null(DeviceRules.CheckPrintable("", 0, 4));
        Assert.Equal(Empty, DeviceRules.CheckPrintable("ab", 3, 4));
        Assert.Null(DeviceRules.CheckPrintable("abcd", 3, 4));
        Assert.Equal(TooLong, DeviceRules.CheckPrintable("abcde", 3, 4));
    }
}
