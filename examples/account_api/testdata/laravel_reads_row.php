<?php
// The other direction of `fortify_row.php`: reads a `users` row written by account_api
// the way Laravel and Fortify read it (Hash::check for the password; Encrypter::decrypt,
// step by step, for the two-factor columns), with the same APP_KEY. Not run by CI (no PHP
// there); run by hand:
//
//   sqlite3 -json account_api.sqlite3 'select password, two_factor_secret, two_factor_recovery_codes from users' \
//     | php laravel_reads_row.php 'base64:…' 'the password'

[$script, $appKey, $password] = $argv;
$key = base64_decode(substr($appKey, 7));

function laravel_decrypt($payload, $key) {
    $payload = json_decode(base64_decode($payload), true);
    if (! is_array($payload)) throw new Exception('The payload is invalid.');
    foreach (['iv', 'value', 'mac'] as $item) {
        if (! isset($payload[$item]) || ! is_string($payload[$item])) throw new Exception('The payload is invalid.');
    }
    if (isset($payload['tag']) && ! is_string($payload['tag'])) throw new Exception('The payload is invalid.');
    if (strlen(base64_decode($payload['iv'], true)) !== openssl_cipher_iv_length('aes-256-cbc')) throw new Exception('The payload is invalid.');
    if (! empty($payload['tag'])) throw new Exception('Unable to use tag because the cipher algorithm does not support AEAD.');
    if (! hash_equals(hash_hmac('sha256', $payload['iv'].$payload['value'], $key), $payload['mac'])) throw new Exception('The MAC is invalid.');
    $decrypted = openssl_decrypt($payload['value'], 'aes-256-cbc', $key, 0, base64_decode($payload['iv']));
    if ($decrypted === false) throw new Exception('Could not decrypt the data.');
    return unserialize($decrypted);
}

foreach (json_decode(stream_get_contents(STDIN), true) as $row) {
    echo 'password: ', password_verify($password, $row['password']) ? 'ok' : 'WRONG', ' (', substr($row['password'], 0, 7), ")\n";
    if ($row['two_factor_secret'] !== null) {
        echo 'two_factor_secret: ', laravel_decrypt($row['two_factor_secret'], $key), "\n";
    }
    if ($row['two_factor_recovery_codes'] !== null) {
        echo 'recovery codes: ', implode(' ', json_decode(laravel_decrypt($row['two_factor_recovery_codes'], $key), true)), "\n";
    }
}
