import requests

headers = {
    "Authorization": "Bearer __API_KEY__",
    "Accept": "application/json",
}

response = requests.get("https://api.proxyhat.com/v1/auth/user", headers=headers)
print(response.json())
