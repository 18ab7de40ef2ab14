using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Xml.Linq;
using Microsoft.AspNetCore.DataProtection;
using Microsoft.AspNetCore.DataProtection.XmlEncryption;
using Microsoft.EntityFrameworkCore;

namespace RunbookPortal.Web.Data;

/// <summary>
/// The Data Protection key ring (it encrypts every stored secret and signs every sign-in cookie) lives in the database,
/// so every node shares it; each key in it is encrypted with a certificate the database does not hold:
/// <list type="bullet">
/// <item><c>DataProtection:Certificate</c> (a PFX file) and <c>DataProtection:CertificatePassword</c>, or else</item>
/// <item>the key file <c>DataProtection:KeyFile</c> (default: <c>keyring.pfx</c> in the data folder), created 0600 on
/// the first start.</item>
/// </list>
/// A copy of the database alone decrypts no secret and forges no cookie. Every node needs the same file; a node
/// whose file does not open the ring refuses to start and says so.
/// </summary>
public sealed class KeyRingProtection
{
    private static readonly XNamespace DataProtectionNs = "http://schemas.asp.net/2015/03/dataProtection";
    private static readonly XNamespace XmlDsig = "http://www.w3.org/2000/09/xmldsig#";

    private KeyRingProtection(X509Certificate2 certificate, string source)
    {
        Certificate = certificate;
        Source = source;
    }

    /// <summary>The certificate that encrypts the ring's keys (with its private key).</summary>
    public X509Certificate2 Certificate { get; }

    /// <summary>Where it came from, for messages.</summary>
    public string Source { get; }

    /// <summary>Loads the configured certificate, or the key file (made on the first start).</summary>
    /// <exception cref="StartupException">It cannot be read.</exception>
    public static KeyRingProtection Load(IConfiguration configuration, DatabaseOptions database)
    {
        var section = configuration.GetSection("DataProtection");
        var certificate = section["Certificate"];
        if (!string.IsNullOrWhiteSpace(certificate))
            return new KeyRingProtection(Open(Path.GetFullPath(certificate), section["CertificatePassword"], "DataProtection:Certificate"), certificate);

        var keyFile = section["KeyFile"];
        if (string.IsNullOrWhiteSpace(keyFile))
        {
            var folder = database.ResolveDataDirectory();
            try
            {
                DataFolder.Secure(folder, DataFolder.StepsRunAsAnotherUser(configuration));
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
            {
                throw new StartupException($"Cannot create the data folder '{folder}' for the key file: {ex.Message} Set Database:DataDirectory or DataProtection:KeyFile.", ex);
            }
            keyFile = Path.Combine(folder, "keyring.pfx");
        }
        keyFile = Path.GetFullPath(keyFile);
        if (!File.Exists(keyFile))
            Create(keyFile);
        return new KeyRingProtection(Open(keyFile, password: null, "DataProtection:KeyFile"), keyFile);
    }

    /// <summary>New keys are encrypted with the certificate; keys encrypted with it are decrypted with it.</summary>
    public void Apply(IDataProtectionBuilder builder) =>
        builder.ProtectKeysWithCertificate(Certificate).UnprotectKeysWithAnyCertificate(Certificate);

    /// <summary>
    /// Before the portal serves anything: refuses a ring whose keys this certificate cannot open (another node's key
    /// file), and encrypts the keys a version before this one stored in clear.
    /// </summary>
    /// <exception cref="StartupException">The ring was encrypted with another certificate.</exception>
    public async Task SealAsync(PortalDbContext db, ILoggerFactory loggers, CancellationToken ct)
    {
        var ours = Convert.ToBase64String(Certificate.RawData);
        var encryptor = new CertificateXmlEncryptor(Certificate, loggers);
        var sealedKeys = 0;
        foreach (var row in await db.DataProtectionKeys.ToListAsync(ct))
        {
            if (string.IsNullOrEmpty(row.Xml))
                continue;
            var key = XElement.Parse(row.Xml);
            var others = key.Descendants(XmlDsig + "X509Certificate").Select(c => c.Value.Trim()).Where(c => c != ours).ToList();
            if (others.Count > 0)
            {
                throw new StartupException(
                    $"The database's key ring is encrypted with another certificate than this node's ({Source}). Every node needs the same key file " +
                    "or certificate: copy it from a node that has it (see the README, \"Keys\"), or point DataProtection:KeyFile or DataProtection:Certificate at it.");
            }
            var clear = key.Descendants().Where(e => (bool?)e.Attribute(DataProtectionNs + "requiresEncryption") == true).ToList();
            foreach (var element in clear)
            {
                var encrypted = encryptor.Encrypt(new XElement(element));
                element.ReplaceWith(new XElement(DataProtectionNs + "encryptedSecret",
                    new XAttribute("decryptorType", encrypted.DecryptorType.AssemblyQualifiedName!),
                    encrypted.EncryptedElement));
            }
            if (clear.Count > 0)
            {
                row.Xml = key.ToString(SaveOptions.DisableFormatting);
                sealedKeys++;
            }
        }
        if (sealedKeys > 0)
        {
            await db.SaveChangesAsync(ct);
            loggers.CreateLogger<KeyRingProtection>().LogWarning("{Count} key(s) of the key ring were stored in clear by an earlier version; they are now encrypted with {Source}.", sealedKeys, Source);
        }
    }

    private static X509Certificate2 Open(string path, string? password, string setting)
    {
        try
        {
            var certificate = X509CertificateLoader.LoadPkcs12FromFile(path, password, X509KeyStorageFlags.EphemeralKeySet);
            if (certificate.GetRSAPrivateKey() is null)
                throw new StartupException($"{setting} '{path}' holds no RSA private key; the key ring needs one to encrypt its keys.");
            return certificate;
        }
        catch (Exception ex) when (ex is CryptographicException or IOException or UnauthorizedAccessException)
        {
            throw new StartupException($"Cannot open {setting} '{path}': {ex.Message}", ex);
        }
    }

    /// <summary>A self-signed RSA certificate of this portal's own, written where only the portal's user can read it.</summary>
    private static void Create(string path)
    {
        using var rsa = RSA.Create(3072);
        var request = new CertificateRequest("CN=RunbookPortal key ring", rsa, HashAlgorithmName.SHA256, RSASignaturePadding.Pkcs1);
        request.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.KeyEncipherment | X509KeyUsageFlags.DataEncipherment, critical: true));
        using var certificate = request.CreateSelfSigned(DateTimeOffset.UtcNow.AddDays(-1), DateTimeOffset.UtcNow.AddYears(100));
        var pfx = certificate.Export(X509ContentType.Pfx);
        try
        {
            Directory.CreateDirectory(Path.GetDirectoryName(path)!);
            var options = new FileStreamOptions { Mode = FileMode.CreateNew, Access = FileAccess.Write };
            if (!OperatingSystem.IsWindows())
                options.UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite;
            using var file = new FileStream(path, options);
            file.Write(pfx);
        }
        catch (IOException) when (File.Exists(path))
        {
            // Another process of this node made it at the same moment: theirs is used.
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            throw new StartupException($"Cannot create the key file '{path}': {ex.Message} Set DataProtection:KeyFile to a writable place.", ex);
        }
    }
}
