using System.Buffers.Binary;
using System.Buffers.Text;
using System.Collections;
using System.Reflection;
using System.Security.Cryptography;
using System.Text;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Options;
using Presence.Gateway.Auth;
using Presence.Grains.Abstractions;
using Presence.Runtime.Storage;
using Presence.Runtime.Storage.Memory;
using Presence.Testing;

namespace Presence.Gateway.Tests.Security;

/// <summary>
/// The credential building blocks on their own, on driven time: device tokens, device secrets, API keys, the failure
/// limiter and the validation of <c>Presence:Auth</c>.
/// </summary>
public sealed class CredentialTests
{
    private const string SigningKey = "unit-signing-key-0123456789abcdef-0123";
    private const string OtherSigningKey = "another-signing-key-0123456789abcdef-99";
    private static readonly DeviceKey Agent = new("acme", "agent-1");

    // Not on a millisecond: tokens carry milliseconds, so the expiry must be truncated consistently.
    private readonly ManualTimeProvider _time = new(new DateTimeOffset(2026, 11, 22, 10, 0, 0, TimeSpan.Zero).AddTicks(1_234_567));

    // ---- device tokens ----

    [Theory]
    [InlineData(1L)]
    [InlineData(-1L)]
    [InlineData(long.MaxValue)]
    [InlineData(long.MinValue)]
    public void A_token_round_trips_its_device_stamp_and_expiry(long stamp)
    {
        var tokens = Tokens(SigningKey);

        var token = tokens.Issue(Agent, stamp, out var expiresAt);

        Assert.StartsWith("v1.", token, StringComparison.Ordinal);
        Assert.True(tokens.TryVerify(token, out var claims));
        Assert.Equal(new DeviceClaims(Agent, stamp, expiresAt), claims);
        Assert.Equal(DateTimeKind.Utc, claims.ExpiresAt.Kind);
        Assert.Equal(0, expiresAt.Ticks % TimeSpan.TicksPerMillisecond);
        Assert.InRange(expiresAt - _time.GetUtcNow().UtcDateTime, TimeSpan.FromMinutes(10) - TimeSpan.FromMilliseconds(1), TimeSpan.FromMinutes(10));
    }

    [Theory]
    [InlineData(0)]
    [InlineData(2)]
    [InlineData(100)]
    public void Remembered_tokens_verify_like_fresh_ones_whatever_the_cache_size(int cacheSize)
    {
        var tokens = Tokens(SigningKey, cacheSize: cacheSize);
        var issued = Enumerable.Range(0, 5).Select(i => tokens.Issue(new DeviceKey("acme", $"dev-{i}"), i + 1, out _)).ToList();

        for (var pass = 0; pass < 3; pass++)
        {
            for (var i = 0; i < issued.Count; i++)
            {
                Assert.True(tokens.TryVerify(issued[i], out var claims), $"pass {pass}, token {i}");
                Assert.Equal(new DeviceKey("acme", $"dev-{i}"), claims.Device);
                Assert.Equal(i + 1, claims.CredentialStamp);
                Assert.False(tokens.TryVerify(issued[i] + "A", out _), "a longer spelling is another token");
            }
        }

        _time.Advance(TimeSpan.FromMinutes(10));
        Assert.All(issued, token => Assert.False(tokens.TryVerify(token, out _), "remembered tokens expire too"));
    }

    [Fact]
    public void A_token_expires_exactly_at_its_expires_at()
    {
        var tokens = Tokens(SigningKey);
        var token = tokens.Issue(Agent, 7, out var expiresAt);

        _time.Advance(expiresAt - _time.GetUtcNow().UtcDateTime - TimeSpan.FromTicks(1));
        Assert.True(tokens.TryVerify(token, out _), "one tick before expires_at the token is valid");

        _time.Advance(TimeSpan.FromTicks(1));
        Assert.Equal(expiresAt, _time.GetUtcNow().UtcDateTime);
        Assert.False(tokens.TryVerify(token, out var claims));
        Assert.Equal(default, claims);
    }

    [Fact]
    public void A_token_with_a_changed_payload_is_rejected()
    {
        var tokens = Tokens(SigningKey);
        var token = tokens.Issue(Agent, 7, out _);
        var (prefix, payload, mac) = Split(token);

        // Another device's payload under this token's MAC.
        var other = Split(tokens.Issue(new DeviceKey("acme", "agent-2"), 7, out _)).Payload;
        Assert.False(tokens.TryVerify($"{prefix}.{other}.{mac}", out _));

        // The same payload with another stamp, re-encoded, or with a later expiry.
        var text = Encoding.UTF8.GetString(Base64Url.DecodeFromChars(payload));
        var parts = text.Split('\n');
        Assert.Equal(["acme", "agent-1", "7"], parts[..3]);
        var restamped = Base64Url.EncodeToString(Encoding.UTF8.GetBytes(string.Join('\n', parts[0], parts[1], "8", parts[3])));
        Assert.False(tokens.TryVerify($"{prefix}.{restamped}.{mac}", out _));
        var extended = Base64Url.EncodeToString(Encoding.UTF8.GetBytes(string.Join('\n', parts[0], parts[1], parts[2], long.Parse(parts[3], System.Globalization.CultureInfo.InvariantCulture) + 3_600_000)));
        Assert.False(tokens.TryVerify($"{prefix}.{extended}.{mac}", out _));

        // One character of the payload changed.
        Assert.False(tokens.TryVerify($"{prefix}.{Flip(payload, payload.Length / 2)}.{mac}", out _));
    }

    [Fact]
    public void A_token_with_a_changed_or_truncated_mac_is_rejected()
    {
        var tokens = Tokens(SigningKey);
        var token = tokens.Issue(Agent, 7, out _);
        var (prefix, payload, mac) = Split(token);

        Assert.False(tokens.TryVerify($"{prefix}.{payload}.{Flip(mac, 0)}", out _));
        Assert.False(tokens.TryVerify($"{prefix}.{payload}.{Flip(mac, mac.Length - 2)}", out _));
        Assert.False(tokens.TryVerify($"{prefix}.{payload}.{mac[..^4]}", out _));
        Assert.False(tokens.TryVerify($"{prefix}.{payload}.", out _));
        Assert.False(tokens.TryVerify($"{prefix}.{payload}", out _));
        Assert.False(tokens.TryVerify($"{prefix}.{payload}.{mac}{mac}", out _));
        Assert.False(tokens.TryVerify($"{prefix}.{payload}.{Base64Url.EncodeToString(new byte[32])}", out _));
    }

    [Theory]
    [InlineData("v2.")]
    [InlineData("V1.")]
    [InlineData("")]
    [InlineData("v1.v1.")]
    public void A_token_with_another_prefix_is_rejected(string replacement)
    {
        var tokens = Tokens(SigningKey);
        var token = tokens.Issue(Agent, 7, out _);

        Assert.False(tokens.TryVerify(replacement + token["v1.".Length..], out _));
    }

    [Fact]
    public void Nothing_that_is_not_a_token_verifies()
    {
        var tokens = Tokens(SigningKey);
        var token = tokens.Issue(Agent, 7, out _);

        Assert.False(tokens.TryVerify(null, out _));
        Assert.False(tokens.TryVerify("", out _));
        Assert.False(tokens.TryVerify("v1.", out _));
        Assert.False(tokens.TryVerify("v1..", out _));
        Assert.False(tokens.TryVerify("v1.!!!.!!!", out _));
        Assert.False(tokens.TryVerify(token + new string('A', DeviceTokens.MaxTokenLength), out _));
        Assert.False(tokens.TryVerify(SigningKey, out _));
    }

    [Fact]
    public void A_token_signed_with_the_previous_key_is_accepted_and_one_with_an_unknown_key_is_not()
    {
        var old = Tokens(OtherSigningKey).Issue(Agent, 7, out var expiresAt);
        var stranger = Tokens("a-signing-key-nobody-configured-0123456789").Issue(Agent, 7, out _);

        var rotating = Tokens(SigningKey, previous: OtherSigningKey);
        Assert.True(rotating.TryVerify(old, out var claims));
        Assert.Equal(new DeviceClaims(Agent, 7, expiresAt), claims);
        Assert.False(rotating.TryVerify(stranger, out _));

        // New tokens are signed with the current key: a verifier that only knows the old one rejects them.
        var fresh = rotating.Issue(Agent, 7, out _);
        Assert.True(Tokens(SigningKey).TryVerify(fresh, out _));
        Assert.False(Tokens(OtherSigningKey).TryVerify(fresh, out _));

        // Once the previous key is dropped, its tokens are rejected.
        Assert.False(Tokens(SigningKey).TryVerify(old, out _));
    }

    [Fact]
    public void Without_a_signing_key_nothing_verifies_and_nothing_is_issued()
    {
        var signed = Tokens(SigningKey).Issue(Agent, 7, out _);
        var unsigned = new DeviceTokens(Options.Create(new AuthOptions { Mode = AuthOptions.SharedSecretMode }), _time);

        Assert.False(unsigned.TryVerify(signed, out _));
        Assert.Throws<InvalidOperationException>(() => unsigned.Issue(Agent, 7, out _));
    }

    // ---- device secrets ----

    [Fact]
    public void A_secret_verifies_against_its_credential_and_nothing_else_does()
    {
        var credential = SecretHasher.Create("acme", SecretHasher.MinIterations, out var secret);

        Assert.StartsWith("acme.", secret, StringComparison.Ordinal);
        Assert.True(Base64Url.DecodeFromChars(secret.AsSpan("acme.".Length)).Length >= 32, "at least 256 random bits");
        Assert.NotEqual(0, credential.Stamp);
        Assert.True(SecretHasher.Verify(credential, secret));

        Assert.False(SecretHasher.Verify(credential, Flip(secret, secret.Length - 3)));
        Assert.False(SecretHasher.Verify(credential, secret[..^1]));
        Assert.False(SecretHasher.Verify(credential, secret + "x"));
        Assert.False(SecretHasher.Verify(credential, ""));
        Assert.False(SecretHasher.Verify(credential, "globex" + secret["acme".Length..]));
        Assert.False(SecretHasher.Verify(null, secret));
        Assert.False(SecretHasher.Verify(null, "decoy"), "an unknown device never verifies, whatever is presented");
    }

    [Fact]
    public void A_damaged_hash_blob_never_verifies()
    {
        var credential = SecretHasher.Create("acme", SecretHasher.MinIterations, out var secret);
        var hash = credential.Hash;

        Assert.False(SecretHasher.Verify(credential with { Hash = hash[..^1] }, secret));
        Assert.False(SecretHasher.Verify(credential with { Hash = [.. hash, 0] }, secret));
        Assert.False(SecretHasher.Verify(credential with { Hash = [] }, secret));
        Assert.False(SecretHasher.Verify(credential with { Hash = hash[..5] }, secret));

        var wrongFormat = hash.ToArray();
        wrongFormat[0] = 2;
        Assert.False(SecretHasher.Verify(credential with { Hash = wrongFormat }, secret));

        var wrongSalt = hash.ToArray();
        wrongSalt[5] ^= 1;
        Assert.False(SecretHasher.Verify(credential with { Hash = wrongSalt }, secret));

        var wrongOutput = hash.ToArray();
        wrongOutput[^1] ^= 0x80;
        Assert.False(SecretHasher.Verify(credential with { Hash = wrongOutput }, secret));

        var wrongIterations = hash.ToArray();
        BinaryPrimitives.WriteInt32BigEndian(wrongIterations.AsSpan(1), SecretHasher.MinIterations + 1);
        Assert.False(SecretHasher.Verify(credential with { Hash = wrongIterations }, secret));
    }

    [Fact]
    public void Two_secrets_for_the_same_tenant_differ_in_secret_stamp_and_hash()
    {
        var first = SecretHasher.Create("acme", SecretHasher.MinIterations, out var firstSecret);
        var second = SecretHasher.Create("acme", SecretHasher.MinIterations, out var secondSecret);

        Assert.NotEqual(firstSecret, secondSecret);
        Assert.NotEqual(first.Stamp, second.Stamp);
        Assert.NotEqual(first.Hash, second.Hash);
        Assert.NotEqual(first.Hash.AsSpan(5, 16).ToArray(), second.Hash.AsSpan(5, 16).ToArray()); // salts
        Assert.False(SecretHasher.Verify(first, secondSecret));
        Assert.False(SecretHasher.Verify(second, firstSecret));
    }

    [Fact]
    public void The_hash_blob_records_its_iterations_so_old_secrets_verify_after_the_count_changes()
    {
        var old = SecretHasher.Create("acme", 10_000, out var oldSecret);
        var raised = SecretHasher.Create("acme", 25_000, out var raisedSecret);

        Assert.Equal(10_000, BinaryPrimitives.ReadInt32BigEndian(old.Hash.AsSpan(1)));
        Assert.Equal(25_000, BinaryPrimitives.ReadInt32BigEndian(raised.Hash.AsSpan(1)));
        Assert.Equal(1, old.Hash[0]);
        Assert.True(SecretHasher.Verify(old, oldSecret));
        Assert.True(SecretHasher.Verify(raised, raisedSecret));

        // The hash really is PBKDF2-SHA256 with the recorded count and salt (not a fixed count).
        var expected = Rfc2898DeriveBytes.Pbkdf2(Encoding.UTF8.GetBytes(oldSecret), old.Hash.AsSpan(5, 16).ToArray(), 10_000, HashAlgorithmName.SHA256, 32);
        Assert.Equal(expected, old.Hash.AsSpan(21).ToArray());
        Assert.Equal(-1, old.Hash.AsSpan().IndexOf(Encoding.UTF8.GetBytes(oldSecret)));
    }

    [Theory]
    [InlineData("acme.abc", true, "acme")]
    [InlineData("default.x-Y_z", true, "default")]
    [InlineData("a_b-9.x", true, "a_b-9")]
    [InlineData("nodot", false, "")]
    [InlineData(".abc", false, "")]
    [InlineData("Acme.abc", false, null)]
    [InlineData("ac me.abc", false, null)]
    [InlineData("acme/x.abc", false, null)]
    [InlineData("", false, "")]
    public void TryReadTenant_reads_the_tenant_of_a_well_formed_secret(string secret, bool valid, string? tenant)
    {
        Assert.Equal(valid, SecretHasher.TryReadTenant(secret, out var read));
        if (tenant is not null)
        {
            Assert.Equal(tenant, read);
        }
    }

    [Fact]
    public void TryReadTenant_rejects_over_long_secrets_and_tenants()
    {
        var created = SecretHasher.Create("acme", SecretHasher.MinIterations, out var secret);
        Assert.True(SecretHasher.TryReadTenant(secret, out var tenant));
        Assert.Equal("acme", tenant);
        Assert.True(SecretHasher.Verify(created, secret));

        Assert.True(SecretHasher.TryReadTenant(new string('t', 64) + ".x", out _));
        Assert.False(SecretHasher.TryReadTenant(new string('t', 65) + ".x", out _));
        Assert.False(SecretHasher.TryReadTenant("acme." + new string('x', 300), out _));
    }

    /// <summary>
    /// SecretHasher's decoy exists so that an unknown device "takes as long as wrong secrets" (no device enumeration
    /// by timing). Through the token endpoint, with a configured iteration count above the minimum, an unknown device
    /// must cost about as much as a wrong secret for a known one. The gap measured here is the ratio of the counts
    /// (200000 / 10000), so the comparison (at least half) is far from noise; the fastest of several tries is used.
    /// </summary>
    [Fact]
    public async Task An_unknown_device_costs_as_much_to_check_as_a_wrong_secret_for_a_known_one()
    {
        await using var server = new SlowHashServer();
        await server.ProvisionAsync("known", SecureServer.AdminKey);

        var known = TimeSpan.MaxValue;
        var unknown = TimeSpan.MaxValue;
        for (var i = 0; i < 4; i++)
        {
            known = Min(known, await TimeAuthAsync(server, "known"));
            unknown = Min(unknown, await TimeAuthAsync(server, "unknown-" + i.ToString(System.Globalization.CultureInfo.InvariantCulture)));
        }

        Assert.True(
            unknown.Ticks * 2 >= known.Ticks,
            $"a wrong secret for a known device took {known.TotalMilliseconds:0.0} ms, an unknown device {unknown.TotalMilliseconds:0.0} ms: existence shows in the timing");

        static TimeSpan Min(TimeSpan a, TimeSpan b) => a < b ? a : b;
    }

    private static async Task<TimeSpan> TimeAuthAsync(SecureServer server, string deviceId)
    {
        var started = System.Diagnostics.Stopwatch.GetTimestamp();
        using var response = await server.SendAsync(HttpMethod.Post, "/api/v1/devices/auth", body: new { device_id = deviceId, secret = "default.not-the-secret-0123456789abcdefghijklmno" });
        var elapsed = System.Diagnostics.Stopwatch.GetElapsedTime(started);
        Assert.Equal(System.Net.HttpStatusCode.Unauthorized, response.StatusCode);
        return elapsed;
    }

    // ---- API keys ----

    [Fact]
    public async Task A_created_key_authenticates_as_its_record_and_is_stored_only_as_a_hash()
    {
        var store = new MemoryApiKeyStore();
        var keys = Keys(store);

        var (record, key) = await keys.CreateAsync("acme", ApiRole.Operator, "ci", default);

        Assert.Matches("^pk\\.[0-9a-f]{16}\\.[A-Za-z0-9_-]{43}$", key);
        Assert.Equal(key.Split('.')[1], record.KeyId);
        Assert.Equal(("acme", ApiRole.Operator, "ci", _time.GetUtcNow().UtcDateTime, (DateTime?)null), (record.TenantId, record.Role, record.Name, record.CreatedAt, record.RevokedAt));
        var stored = await store.FindAsync(record.KeyId);
        Assert.NotNull(stored);
        Assert.Equal(32, stored.KeyHash.Length);
        Assert.Equal(-1, stored.KeyHash.AsSpan().IndexOf(Encoding.UTF8.GetBytes(key.Split('.')[2])));

        var authenticated = await keys.AuthenticateAsync(key, default);
        Assert.NotNull(authenticated);
        Assert.Equal((record.KeyId, "acme", ApiRole.Operator), (authenticated.KeyId, authenticated.TenantId, authenticated.Role));

        var (other, otherKey) = await keys.CreateAsync("acme", ApiRole.Operator, "ci", default);
        Assert.NotEqual(record.KeyId, other.KeyId);
        Assert.NotEqual(key, otherKey);
    }

    [Fact]
    public async Task A_key_with_a_wrong_secret_part_or_another_keys_id_does_not_authenticate()
    {
        var keys = Keys(new MemoryApiKeyStore());
        var (record, key) = await keys.CreateAsync("acme", ApiRole.Admin, "a", default);
        var (_, otherKey) = await keys.CreateAsync("acme", ApiRole.Viewer, "b", default);

        Assert.Null(await keys.AuthenticateAsync(Flip(key, key.Length - 5), default));
        Assert.Null(await keys.AuthenticateAsync(key[..^1], default));
        Assert.Null(await keys.AuthenticateAsync(key + "A", default));
        Assert.Null(await keys.AuthenticateAsync($"pk.{record.KeyId}.{otherKey.Split('.')[2]}", default));
        Assert.Null(await keys.AuthenticateAsync($"pk.{otherKey.Split('.')[1]}.{key.Split('.')[2]}", default));
        Assert.Null(await keys.AuthenticateAsync($"pk.{Convert.ToHexStringLower(new byte[8])}.{key.Split('.')[2]}", default));
    }

    [Fact]
    public async Task A_revoked_key_does_not_authenticate_and_revoking_twice_is_false()
    {
        var keys = Keys(new MemoryApiKeyStore());
        var (record, key) = await keys.CreateAsync("acme", ApiRole.Admin, "a", default);
        var (_, kept) = await keys.CreateAsync("acme", ApiRole.Admin, "b", default);

        _time.Advance(TimeSpan.FromMinutes(5));
        Assert.True(await keys.RevokeAsync(record.KeyId, default));

        Assert.Null(await keys.AuthenticateAsync(key, default));
        Assert.NotNull(await keys.AuthenticateAsync(kept, default));
        Assert.Equal(_time.GetUtcNow().UtcDateTime, (await keys.FindAsync(record.KeyId, default))!.RevokedAt);
        Assert.False(await keys.RevokeAsync(record.KeyId, default));
        Assert.False(await keys.RevokeAsync("0123456789abcdef", default));
    }

    [Theory]
    [InlineData("")]
    [InlineData("pk.")]
    [InlineData("pk..")]
    [InlineData("pk.0123456789abcdef")]
    [InlineData("pk.0123456789ABCDEF.secret")]
    [InlineData("pk.0123456789abcde.secret")]
    [InlineData("pk.0123456789abcdef0.secret")]
    [InlineData("pk.xyz.secret")]
    [InlineData("PK.0123456789abcdef.secret")]
    [InlineData("Bearer pk.0123456789abcdef.secret")]
    [InlineData("v1.abc.def")]
    public async Task A_malformed_key_does_not_authenticate(string presented)
    {
        var keys = Keys(new MemoryApiKeyStore());
        await keys.CreateAsync("acme", ApiRole.Admin, "a", default);

        Assert.Null(await keys.AuthenticateAsync(presented, default));
    }

    [Fact]
    public async Task An_over_long_key_does_not_authenticate_even_with_a_valid_prefix()
    {
        var keys = Keys(new MemoryApiKeyStore());
        var (_, key) = await keys.CreateAsync("acme", ApiRole.Admin, "a", default);

        Assert.Null(await keys.AuthenticateAsync(key + new string('A', ApiKeys.MaxKeyLength), default));
        Assert.Null(await keys.AuthenticateAsync(key + "." + new string('A', ApiKeys.MaxKeyLength), default));
        Assert.Null(await keys.AuthenticateAsync(new string('x', 100_000), default));
    }

    [Fact]
    public async Task The_bootstrap_key_is_the_admin_of_default_and_only_when_configured()
    {
        const string Bootstrap = "bootstrap-key-for-unit-tests-0123";
        var keys = Keys(new MemoryApiKeyStore(), adminApiKey: Bootstrap);

        var admin = await keys.AuthenticateAsync(Bootstrap, default);
        Assert.NotNull(admin);
        Assert.Equal((ApiKeys.BootstrapKeyId, DeviceKey.DefaultTenant, ApiRole.Admin), (admin.KeyId, admin.TenantId, admin.Role));

        Assert.Null(await keys.AuthenticateAsync(Bootstrap[..^1], default));
        Assert.Null(await keys.AuthenticateAsync(Bootstrap + " ", default));
        Assert.Null(await keys.AuthenticateAsync(Bootstrap.ToUpperInvariant(), default));
        Assert.Null(await Keys(new MemoryApiKeyStore()).AuthenticateAsync(Bootstrap, default));
        Assert.Null(await Keys(new MemoryApiKeyStore()).AuthenticateAsync("", default));
        Assert.Null(await keys.FindAsync(ApiKeys.BootstrapKeyId, default));
    }

    /// <summary>
    /// Whatever the validator accepts as <c>AdminApiKey</c> must work: a long bootstrap key (a passphrase, a 384-bit
    /// key in hex) is allowed by the configuration check.
    /// </summary>
    [Fact]
    public async Task A_bootstrap_key_the_validator_accepts_authenticates()
    {
        var bootstrap = new string('k', ApiKeys.MaxKeyLength + 1);
        var options = new AuthOptions { Mode = AuthOptions.DeviceTokenMode, TokenSigningKey = SigningKey, AdminApiKey = bootstrap };
        Assert.True(Validate(options).Succeeded, "the validator accepts the key");

        var admin = await new ApiKeys(new MemoryApiKeyStore(), Options.Create(options), _time).AuthenticateAsync(bootstrap, default);

        Assert.True(admin is not null, $"a {bootstrap.Length}-character AdminApiKey passes validation but never authenticates");
    }

    // ---- failure limiter ----

    [Fact]
    public void A_key_is_blocked_after_the_limit_until_its_window_ends()
    {
        var limiter = Limiter(3);
        var start = _time.GetUtcNow();

        limiter.Failed("ip:10.0.0.1");
        _time.Advance(TimeSpan.FromSeconds(10));
        limiter.Failed("ip:10.0.0.1");
        Assert.False(limiter.IsBlocked("ip:10.0.0.1", out var retryAfter));
        Assert.Equal(TimeSpan.Zero, retryAfter);

        _time.Advance(TimeSpan.FromSeconds(10));
        limiter.Failed("ip:10.0.0.1");
        Assert.True(limiter.IsBlocked("ip:10.0.0.1", out retryAfter));
        Assert.Equal(TimeSpan.FromSeconds(40), retryAfter);

        // More failures while blocked do not extend the window.
        limiter.Failed("ip:10.0.0.1");
        _time.Advance(start + TimeSpan.FromMinutes(1) - _time.GetUtcNow() - TimeSpan.FromTicks(1));
        Assert.True(limiter.IsBlocked("ip:10.0.0.1", out retryAfter));
        Assert.Equal(TimeSpan.FromTicks(1), retryAfter);

        _time.Advance(TimeSpan.FromTicks(1));
        Assert.False(limiter.IsBlocked("ip:10.0.0.1", out _));

        // A new window: the count starts again.
        limiter.Failed("ip:10.0.0.1");
        limiter.Failed("ip:10.0.0.1");
        Assert.False(limiter.IsBlocked("ip:10.0.0.1", out _));
        limiter.Failed("ip:10.0.0.1");
        Assert.True(limiter.IsBlocked("ip:10.0.0.1", out retryAfter));
        Assert.Equal(TimeSpan.FromMinutes(1), retryAfter);
    }

    [Fact]
    public void Keys_are_counted_independently()
    {
        var limiter = Limiter(2);

        limiter.Failed("ip:10.0.0.1");
        limiter.Failed("ip:10.0.0.1");
        limiter.Failed("dev:acme/agent-1");

        Assert.True(limiter.IsBlocked("ip:10.0.0.1", out _));
        Assert.False(limiter.IsBlocked("dev:acme/agent-1", out _));
        Assert.False(limiter.IsBlocked("ip:10.0.0.2", out _));
        Assert.False(limiter.IsBlocked("IP:10.0.0.1", out _));

        limiter.Failed("dev:acme/agent-1");
        Assert.True(limiter.IsBlocked("dev:acme/agent-1", out _));
        Assert.False(limiter.IsBlocked("dev:acme/agent-2", out _));
    }

    [Fact]
    public void Memory_stays_bounded_when_more_keys_fail_than_it_keeps()
    {
        var limiter = Limiter(2);
        for (var i = 0; i < FailureLimiter.MaxKeys + 1_000; i++)
        {
            limiter.Failed("ip:" + i.ToString(System.Globalization.CultureInfo.InvariantCulture));
        }

        Assert.InRange(Tracked(limiter), 1, FailureLimiter.MaxKeys);

        // The newest keys are still counted: the most recent one is blocked after one more failure.
        var newest = "ip:" + (FailureLimiter.MaxKeys + 999).ToString(System.Globalization.CultureInfo.InvariantCulture);
        limiter.Failed(newest);
        Assert.True(limiter.IsBlocked(newest, out _));

        // After the window, new keys replace expired ones and the count stays within the bound.
        _time.Advance(TimeSpan.FromMinutes(1));
        for (var i = 0; i < FailureLimiter.MaxKeys; i++)
        {
            limiter.Failed("dev:" + i.ToString(System.Globalization.CultureInfo.InvariantCulture));
        }

        Assert.InRange(Tracked(limiter), 1, FailureLimiter.MaxKeys);
        Assert.False(limiter.IsBlocked(newest, out _));
    }

    // ---- AuthOptionsValidator ----

    [Fact]
    public void Mode_none_on_loopback_or_with_no_address_is_valid()
    {
        Assert.True(Validate(new AuthOptions()).Succeeded);
        Assert.True(Validate(new AuthOptions(), ("urls", "http://127.0.0.1:8080;http://localhost:8081;http://[::1]:8082")).Succeeded);
        Assert.True(Validate(new AuthOptions(), ("Kestrel:Endpoints:Http:Url", "http://127.0.0.1:5000")).Succeeded);
    }

    [Theory]
    [InlineData("urls", "http://0.0.0.0:8080", "http://0.0.0.0:8080")]
    [InlineData("urls", "http://127.0.0.1:8080;http://*:8081", "http://*:8081")]
    [InlineData("urls", "http://+:80", "http://+:80")]
    [InlineData("urls", "http://[::]:80", "http://[::]:80")]
    [InlineData("urls", "http://192.168.1.10:80", "http://192.168.1.10:80")]
    [InlineData("http_ports", "8080", "http://*:8080")]
    [InlineData("Kestrel:Endpoints:Public:Url", "http://0.0.0.0:5000", "http://0.0.0.0:5000")]
    public void Mode_none_on_an_exposed_address_needs_AllowInsecure(string key, string value, string named)
    {
        var result = Validate(new AuthOptions(), (key, value));

        Assert.True(result.Failed);
        var message = Assert.Single(result.Failures!);
        Assert.Contains("Presence:Auth:AllowInsecure", message, StringComparison.Ordinal);
        Assert.Contains("Presence:Auth:Mode", message, StringComparison.Ordinal);
        Assert.Contains(named, message, StringComparison.Ordinal);

        Assert.True(Validate(new AuthOptions { AllowInsecure = true }, (key, value)).Succeeded);
    }

    [Fact]
    public void Shared_secret_mode_needs_a_long_enough_secret_and_never_echoes_it()
    {
        var missing = Validate(new AuthOptions { Mode = AuthOptions.SharedSecretMode });
        Assert.Equal(["Presence:Auth:SharedSecret is required for mode 'shared-secret'"], missing.Failures);
        Assert.Equal(["Presence:Auth:SharedSecret is required for mode 'shared-secret'"], Validate(new AuthOptions { Mode = AuthOptions.SharedSecretMode, SharedSecret = "   " }).Failures);

        const string Short = "short-secret-15";
        var tooShort = Validate(new AuthOptions { Mode = AuthOptions.SharedSecretMode, SharedSecret = Short });
        var message = Assert.Single(tooShort.Failures!);
        Assert.Contains("Presence:Auth:SharedSecret", message, StringComparison.Ordinal);
        Assert.Contains("16", message, StringComparison.Ordinal);
        Assert.DoesNotContain(Short, message, StringComparison.Ordinal);

        Assert.True(Validate(new AuthOptions { Mode = AuthOptions.SharedSecretMode, SharedSecret = Short + "6" }, ("urls", "http://0.0.0.0:80")).Succeeded);
    }

    [Fact]
    public void Device_token_mode_needs_a_signing_key_of_32_characters_and_never_echoes_it()
    {
        var missing = Validate(new AuthOptions { Mode = AuthOptions.DeviceTokenMode });
        Assert.Equal(["Presence:Auth:TokenSigningKey is required for mode 'device-token'"], missing.Failures);

        var key31 = new string('s', 31);
        var tooShort = Validate(new AuthOptions { Mode = AuthOptions.DeviceTokenMode, TokenSigningKey = key31 });
        var message = Assert.Single(tooShort.Failures!);
        Assert.Contains("Presence:Auth:TokenSigningKey", message, StringComparison.Ordinal);
        Assert.Contains("32", message, StringComparison.Ordinal);
        Assert.DoesNotContain(key31, message, StringComparison.Ordinal);

        Assert.True(Validate(new AuthOptions { Mode = AuthOptions.DeviceTokenMode, TokenSigningKey = key31 + "s" }, ("urls", "http://0.0.0.0:80")).Succeeded);

        const string Previous = "previous-but-short";
        var previous = Validate(new AuthOptions { Mode = AuthOptions.DeviceTokenMode, TokenSigningKey = SigningKey, PreviousTokenSigningKey = Previous });
        message = Assert.Single(previous.Failures!);
        Assert.Contains("Presence:Auth:PreviousTokenSigningKey", message, StringComparison.Ordinal);
        Assert.DoesNotContain(Previous, message, StringComparison.Ordinal);
    }

    [Fact]
    public void An_admin_api_key_must_have_16_characters_in_every_mode_and_is_never_echoed()
    {
        const string Key15 = "admin-key-15-ch";
        foreach (var options in new[]
        {
            new AuthOptions { AdminApiKey = Key15 },
            new AuthOptions { Mode = AuthOptions.SharedSecretMode, SharedSecret = "fleet-connect-secret-0123", AdminApiKey = Key15 },
            new AuthOptions { Mode = AuthOptions.DeviceTokenMode, TokenSigningKey = SigningKey, AdminApiKey = Key15 },
        })
        {
            var message = Assert.Single(Validate(options).Failures!);
            Assert.Contains("Presence:Auth:AdminApiKey", message, StringComparison.Ordinal);
            Assert.Contains("16", message, StringComparison.Ordinal);
            Assert.DoesNotContain(Key15, message, StringComparison.Ordinal);

            options.AdminApiKey = Key15 + "x";
            Assert.True(Validate(options).Succeeded, $"mode {options.Mode} with a 16-character admin key");
        }
    }

    [Theory]
    [InlineData("Device-Token")]
    [InlineData("token")]
    [InlineData("")]
    [InlineData("shared_secret")]
    public void An_unknown_mode_is_named_with_the_valid_ones(string mode)
    {
        var message = Assert.Single(Validate(new AuthOptions { Mode = mode, SharedSecret = "fleet-connect-secret-0123", TokenSigningKey = SigningKey }).Failures!);

        Assert.Contains("Presence:Auth:Mode must be 'none', 'shared-secret' or 'device-token'", message, StringComparison.Ordinal);
        Assert.Contains($"'{mode}'", message, StringComparison.Ordinal);
    }

    [Fact]
    public void An_unknown_mode_that_looks_like_a_secret_is_not_echoed()
    {
        var secretLike = "s3cr3t-" + new string('x', 40);
        var message = Assert.Single(Validate(new AuthOptions { Mode = secretLike }).Failures!);

        Assert.DoesNotContain(secretLike, message, StringComparison.Ordinal);
        Assert.DoesNotContain("\n", Validate(new AuthOptions { Mode = "none\nforged log line" }).Failures!.Single(), StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(0.0, false)]
    [InlineData(0.5, false)]
    [InlineData(1.0, true)]
    [InlineData(1440.0, true)]
    [InlineData(10080.0, true)]
    [InlineData(10080.5, false)]
    [InlineData(-5.0, false)]
    [InlineData(double.NaN, false)]
    [InlineData(double.PositiveInfinity, false)]
    public void Token_lifetime_must_be_between_1_minute_and_7_days(double minutes, bool valid)
    {
        var result = Validate(new AuthOptions { Mode = AuthOptions.DeviceTokenMode, TokenSigningKey = SigningKey, TokenLifetimeMinutes = minutes });

        Assert.Equal(valid, result.Succeeded);
        if (!valid)
        {
            Assert.Equal(["Presence:Auth:TokenLifetimeMinutes must be between 1 and 10080 (7 days)"], result.Failures);
        }
    }

    [Fact]
    public void Several_problems_are_all_reported_and_no_value_appears_in_any()
    {
        const string SharedSecret = "tiny-secret";
        const string Admin = "tiny-admin";
        var options = new AuthOptions
        {
            Mode = AuthOptions.SharedSecretMode,
            SharedSecret = SharedSecret,
            AdminApiKey = Admin,
            TokenLifetimeMinutes = 0,
            FailuresPerMinute = 0,
            SecretHashIterations = 1_000,
        };

        var failures = Validate(options).Failures!.ToList();

        Assert.Equal(5, failures.Count);
        Assert.All(failures, f => Assert.StartsWith("Presence:Auth:", f, StringComparison.Ordinal));
        Assert.All(failures, f => Assert.DoesNotContain(SharedSecret, f, StringComparison.Ordinal));
        Assert.All(failures, f => Assert.DoesNotContain(Admin, f, StringComparison.Ordinal));
        Assert.Contains(failures, f => f.Contains("SecretHashIterations", StringComparison.Ordinal));
        Assert.Contains(failures, f => f.Contains("FailuresPerMinute", StringComparison.Ordinal));
    }

    // ---- helpers ----

    private DeviceTokens Tokens(string key, string? previous = null, int cacheSize = 100_000) =>
        new(Options.Create(new AuthOptions
        {
            Mode = AuthOptions.DeviceTokenMode,
            TokenSigningKey = key,
            PreviousTokenSigningKey = previous,
            TokenLifetimeMinutes = 10,
            TokenCacheSize = cacheSize,
        }), _time);

    private ApiKeys Keys(IApiKeyStore store, string? adminApiKey = null) =>
        new(store, Options.Create(new AuthOptions { Mode = AuthOptions.DeviceTokenMode, TokenSigningKey = SigningKey, AdminApiKey = adminApiKey }), _time);

    private FailureLimiter Limiter(int perMinute) => new(Options.Create(new AuthOptions { FailuresPerMinute = perMinute }), _time);

    private static ValidateOptionsResult Validate(AuthOptions options, params (string Key, string Value)[] settings)
    {
        var configuration = new ConfigurationBuilder()
            .AddInMemoryCollection(settings.Select(s => new KeyValuePair<string, string?>(s.Key, s.Value)))
            .Build();
        return new AuthOptionsValidator(configuration).Validate(null, options);
    }

    /// <summary>How many keys the limiter holds (private state: the bound is not observable otherwise).</summary>
    private static int Tracked(FailureLimiter limiter) =>
        ((ICollection)typeof(FailureLimiter).GetField("_windows", BindingFlags.NonPublic | BindingFlags.Instance)!.GetValue(limiter)!).Count;

    private static (string Prefix, string Payload, string Mac) Split(string token)
    {
        var parts = token.Split('.');
        Assert.Equal(3, parts.Length);
        return (parts[0], parts[1], parts[2]);
    }

    /// <summary>The text with the character at <paramref name="index"/> replaced by another base64url character.</summary>
    private static string Flip(string text, int index)
    {
        var chars = text.ToCharArray();
        chars[index] = chars[index] == 'A' ? 'B' : 'A';
        return new string(chars);
    }
}

/// <summary>A secure gateway whose new secrets are hashed with far more iterations than the minimum.</summary>
file sealed class SlowHashServer() : SecureServer(new Dictionary<string, string> { ["Presence:Auth:SecretHashIterations"] = "200000" });
