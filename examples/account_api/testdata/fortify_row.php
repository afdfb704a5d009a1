<?php
// Writes a `users` row as a Laravel 11 app with Fortify writes it: the password hashed by
// `Hash::make` (bcrypt, cost 12, `$2y$`), `two_factor_secret` and
// `two_factor_recovery_codes` encrypted by `encrypt()` (Laravel's Encrypter, AES-256-CBC,
// the value PHP-serialized). The steps are those of Illuminate\Encryption\Encrypter::encrypt,
// with PHP's own openssl, serialize, json_encode and hash_hmac. The output is pinned in
// `tests/account_api_laravel.rs`; run `php fortify_row.php` to make a new one.

$appKey = 'base64:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=';
$key = base64_decode(substr($appKey, 7));

function laravel_encrypt($value, $key) {
    $iv = random_bytes(openssl_cipher_iv_length('aes-256-cbc'));
    $value = openssl_encrypt(serialize($value), 'aes-256-cbc', $key, 0, $iv, $tag);
    $iv = base64_encode($iv);
    $tag = base64_encode($tag ?? '');
    $mac = hash_hmac('sha256', $iv.$value, $key);
    return base64_encode(json_encode(compact('iv', 'value', 'mac', 'tag'), JSON_UNESCAPED_SLASHES));
}

// Google2FA's generateSecretKey(16): 16 characters of base32.
$secret = 'JBSWY3DPEHPK3PXP';
// Fortify's RecoveryCode::generate(): Str::random(10).'-'.Str::random(10).
$codes = ['aB3dE5gH7j-Kl9Mn0Pq2', 'Xy1Zw2Vu3T-s4Rq5Po6N', 'q1w2e3r4t5-y6u7i8o9p0',
          'AAAAAAAAAA-BBBBBBBBBB', 'zZzZzZzZzZ-yYyYyYyYyY', '0123456789-9876543210',
          'Laravel123-Fortify456', 'abcdefghij-klmnopqrst'];

echo json_encode([
    'app_key' => $appKey,
    'password' => password_hash('secret-password', PASSWORD_BCRYPT, ['cost' => 12]),
    'two_factor_secret' => laravel_encrypt($secret, $key),
    'two_factor_recovery_codes' => laravel_encrypt(json_encode($codes), $key),
], JSON_PRETTY_PRINT | JSON_UNESCAPED_SLASHES), "\n";
